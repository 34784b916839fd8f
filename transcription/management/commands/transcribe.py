"""manage.py transcribe FILE…: transcribe audio or video files on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from transcription.engine import (
    FORMATS,
    EngineError,
    ModelNotFoundError,
    TranscribeOptions,
    probe,
    render,
    transcribe,
)
from transcription.engine.registry import bundled_model_offer
from transcription.lanes import (
    DeviceOverrides,
    device_plan_build,
    lane_model_name,
    model_load,
)

# A container's duration is an estimate for some formats (VBR mp3 without a header), so
# only a shortfall above this fraction (and above one second) counts as truncation.
TRUNCATED_SHORTFALL = 0.1


class Command(BaseCommand):
    help = "Transcribe audio or video files and print or write txt, srt, vtt or json."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument(
            "--model", help="hub name or local CTranslate2 directory (default: SCRIBE_BATCH_MODEL)"
        )
        parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: SCRIBE_DEVICE)")
        parser.add_argument(
            "--compute-type",
            help="e.g. int8, float16, int8_float16 (default: SCRIBE_COMPUTE_TYPE, auto)",
        )
        parser.add_argument("--cpu-threads", type=int, help="CPU threads for the model")
        parser.add_argument("--language", help="language code such as ko or en (default: detect)")
        parser.add_argument(
            "--hotwords",
            nargs="+",
            metavar="WORD",
            help="terms to bias decoding towards, e.g. vLLM Kubernetes",
        )
        parser.add_argument("--initial-prompt", help="text to condition the first window on")
        parser.add_argument(
            "--word-timestamps", action="store_true", help="add word timings (json)"
        )
        parser.add_argument(
            "--no-vad", action="store_true", help="decode silence too (no voice-activity detection)"
        )
        parser.add_argument("--beam-size", type=int, default=5)
        parser.add_argument(
            "--batch-size", type=int, help="batched inference with this batch size (faster on GPU)"
        )
        parser.add_argument(
            "--format",
            action="extend",
            nargs="+",
            choices=sorted(FORMATS),
            metavar="FORMAT",
            help="txt, srt, vtt or json; several after one --format or --format repeated "
            "(default: txt)",
        )
        parser.add_argument(
            "--output",
            type=Path,
            metavar="DIR",
            help="write FILE-stem.FORMAT files here instead of printing",
        )

    def handle(self, *args, **options):
        files: list[Path] = options["files"]
        formats = list(dict.fromkeys(options["format"] or ["txt"]))
        model = options["model"] or lane_model_name("batch")
        overrides = DeviceOverrides(
            device=options["device"],
            compute_type=options["compute_type"],
            cpu_threads=options["cpu_threads"],
            workers=1,
        )
        decode = TranscribeOptions(
            language=options["language"],
            hotwords=" ".join(options["hotwords"]) if options["hotwords"] else None,
            initial_prompt=options["initial_prompt"],
            vad=not options["no_vad"],
            word_timestamps=options["word_timestamps"],
            beam_size=options["beam_size"],
            batch_size=options["batch_size"],
        )
        output: Path | None = options["output"]
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
        try:
            plan = device_plan_build(model=model, overrides=overrides)
            loaded = model_load(model=model, plan=plan)
        except ModelNotFoundError as exc:
            # Still one line; a model already on disk is offered, never used unasked.
            offer = bundled_model_offer(how='pass --model {path} (make run: ARGS="--model {path}")')
            raise CommandError(exc.message + offer) from None
        except EngineError as exc:
            raise CommandError(exc.message) from None
        for reason in plan.reasons:
            self._note(f"note: {reason}")
        if loaded.fallback:
            self._note(f"note: {loaded.fallback}")

        stems = [f.stem for f in files]
        failures: list[str] = []
        for path in files:
            try:
                transcript = self._transcribe_one(path, loaded, decode)
            except EngineError as exc:
                failures.append(exc.message)  # engine messages name the file already
                if len(files) > 1:
                    self.stderr.write(f"error: {exc.message}")
                continue
            self._warn_if_truncated(path, transcript.duration_s)
            # Name outputs by stem, or by full name when two inputs share a stem.
            base = path.stem if stems.count(path.stem) == 1 else path.name
            for fmt in formats:
                text = render(transcript, fmt, words=decode.word_timestamps)
                if output is not None:
                    target = output / f"{base}.{fmt}"
                    target.write_text(text, encoding="utf-8")
                    self.stdout.write(f"wrote {target}")
                else:
                    if len(files) > 1 or len(formats) > 1:
                        self.stdout.write(f"==> {base}.{fmt} <==")
                    self.stdout.write(text, ending="" if text.endswith("\n") else "\n")
        if failures:
            if len(files) == 1:
                raise CommandError(failures[0])
            raise CommandError(f"{len(failures)} of {len(files)} files failed")

    def _note(self, message: str) -> None:
        # stderr's default style is ERROR (red on a terminal); notes and warnings are not.
        self.stderr.write(message, style_func=lambda text: text)

    def _warn_if_truncated(self, path: Path, decoded_s: float) -> None:
        """Warn when far less audio decoded than the container claims: a cut-off file."""
        claimed_s = probe(path).duration_s
        if claimed_s is None or claimed_s - decoded_s <= max(1.0, TRUNCATED_SHORTFALL * claimed_s):
            return
        self._note(
            f"warning: only {decoded_s:.1f} s of audio could be decoded from {path}, whose "
            f"container says it lasts {claimed_s:.1f} s; the file looks truncated, so the "
            "transcript covers only the start. Check the file or send it again."
        )

    def _transcribe_one(self, path: Path, loaded, decode: TranscribeOptions):
        bar = tqdm(
            total=None,
            unit="s",
            desc=path.name,
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]",
        )

        def on_progress(processed: float, total: float | None) -> None:
            if total and bar.total is None:
                bar.total = round(total)
            bar.n = min(processed, bar.total or processed)
            bar.refresh()

        try:
            return transcribe(path, loaded, decode, on_progress=on_progress)
        finally:
            bar.close()
