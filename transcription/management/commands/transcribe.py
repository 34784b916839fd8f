"""manage.py transcribe FILE…: transcribe audio or video files on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from transcription.engine import (
    FORMATS,
    EngineError,
    TranscribeOptions,
    render,
    transcribe,
)
from transcription.services import (
    DeviceOverrides,
    device_plan_build,
    lane_model_name,
    model_load,
)


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
            action="append",
            choices=sorted(FORMATS),
            help="output format; repeat for several (default: txt)",
        )
        parser.add_argument(
            "--output",
            type=Path,
            metavar="DIR",
            help="write FILE-stem.FORMAT files here instead of printing",
        )

    def handle(self, *args, **options):
        files: list[Path] = options["files"]
        formats = options["format"] or ["txt"]
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
        except EngineError as exc:
            raise CommandError(exc.message) from None
        for reason in plan.reasons:
            self.stderr.write(f"note: {reason}")
        if loaded.fallback:
            self.stderr.write(f"note: {loaded.fallback}")

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
            # Name outputs by stem, or by full name when two inputs share a stem.
            base = path.stem if stems.count(path.stem) == 1 else path.name
            for fmt in formats:
                text = render(transcript, fmt, words=decode.word_timestamps)
                if output is not None:
                    target = output / f"{base}.{fmt}"
                    target.write_text(text, encoding="utf-8")
                    self.stderr.write(f"wrote {target}")
                else:
                    if len(files) > 1 or len(formats) > 1:
                        self.stdout.write(f"==> {base}.{fmt} <==")
                    self.stdout.write(text, ending="" if text.endswith("\n") else "\n")
        if failures:
            if len(files) == 1:
                raise CommandError(failures[0])
            raise CommandError(f"{len(failures)} of {len(files)} files failed")

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
