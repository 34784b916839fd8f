"""manage.py bench MANIFEST: accuracy, glossary terms, speed and memory per configuration.

The manifest is JSON lines ({"audio": "a.wav", "reference": "…", "language": "ko",
"terms": ["vLLM"]}) or CSV with the columns audio, reference, language, terms (terms
separated by ";"); audio paths are relative to the manifest. What is measured, and how, is
described in ``transcription/bench/__init__.py``.

``manage.py bench --synthesize LINES.jsonl --out DIR`` speaks {"text", "terms"} lines with
espeak-ng into DIR and writes DIR/manifest.jsonl, a term test to bench at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from glossary.models import Glossary
from glossary.review import MODES
from transcription.bench import (
    BenchConfig,
    BenchError,
    bench_run,
    configurations,
    glossary_effects,
    hybrid_verdicts,
    manifest_read,
    plot_available,
    plot_write,
    report_json,
    speech_synthesize,
    table_render,
)
from transcription.bench.synthesize import DEFAULT_VOICE, DEFAULT_WORDS_PER_MINUTE
from transcription.lanes import lane_model_name


def _listed(convert: Callable[[str], object], what: str) -> Callable[[str], list]:
    """An argparse type for a comma-separated list."""

    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise ValueError(f"no {what} given")
        return [convert(item) for item in items]

    parse.__name__ = f"comma-separated {what}"
    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _batch(text: str) -> int | None:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value or None


class Command(BaseCommand):
    help = (
        "Measure WER, CER, glossary term recall, false-term insertions, speed, load time and "
        "memory over a grid of models, compute types, beam and batch sizes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "manifest", nargs="?", type=Path, help="JSON lines or .csv: audio, reference, …"
        )
        parser.add_argument(
            "--models",
            "--model",
            type=_listed(str, "models"),
            help="comma-separated hub names or local directories (default: the batch lane's)",
        )
        parser.add_argument(
            "--compute-types",
            "--compute-type",
            type=_listed(str, "compute types"),
            help="e.g. int8,float16 (default: what the device plan picks)",
        )
        parser.add_argument(
            "--beam-sizes", type=_listed(_positive, "beam sizes"), default=[5], help="e.g. 1,5"
        )
        parser.add_argument(
            "--batch-sizes",
            type=_listed(_batch, "batch sizes"),
            default=[None],
            help="e.g. 0,8 (0: sequential decoding, the default)",
        )
        parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: SCRIBE_DEVICE)")
        parser.add_argument("--cpu-threads", type=int, help="CPU threads for the model")
        parser.add_argument("--glossary", type=int, help="glossary id for bias and correction")
        parser.add_argument(
            "--compare-glossary",
            action="store_true",
            help="also run every configuration without the glossary",
        )
        parser.add_argument(
            "--hotwords",
            default="chosen",
            help="with the glossary: 'chosen' (each window offered the terms a first pass "
            "heard, as jobs do), 'all' (every term the prompt holds), or 'chosen,all'",
        )
        parser.add_argument("--post-correction", choices=MODES, default="rules")
        parser.add_argument(
            "--repeat", type=_positive, default=1, help="runs per file; timings are the median"
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="seed of the sampling a failed greedy decode falls back to, set before "
            "every file, so that a run repeats its figures (default 0)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument("--plot", type=Path, metavar="PNG", help="write a bar chart here")
        parser.add_argument(
            "--synthesize",
            type=Path,
            metavar="LINES.jsonl",
            help='speak {"text", "terms"} lines with espeak-ng into --out and write a manifest',
        )
        parser.add_argument("--out", type=Path, metavar="DIR", help="where --synthesize writes")
        parser.add_argument(
            "--voice", default=DEFAULT_VOICE, help=f"espeak-ng voice (default {DEFAULT_VOICE})"
        )
        parser.add_argument(
            "--speed",
            type=_positive,
            default=DEFAULT_WORDS_PER_MINUTE,
            help=f"espeak-ng words per minute (default {DEFAULT_WORDS_PER_MINUTE})",
        )

    def handle(self, *args, **options) -> None:
        try:
            if options["synthesize"]:
                self._synthesize(options)
            else:
                self._bench(options)
        except BenchError as exc:
            raise CommandError(exc.message) from None

    def _synthesize(self, options: dict) -> None:
        if options["manifest"] or options["out"] is None:
            raise CommandError("Use --synthesize LINES.jsonl --out DIR, without a manifest.")
        manifest = speech_synthesize(
            lines=options["synthesize"],
            out=options["out"],
            voice=options["voice"],
            words_per_minute=options["speed"],
        )
        self.stdout.write(f"wrote {manifest}; measure it with: manage.py bench {manifest}")

    def _bench(self, options: dict) -> None:
        if options["manifest"] is None:
            raise CommandError("Give a manifest (or --synthesize LINES.jsonl --out DIR).")
        if options["plot"]:
            plot_available()  # before minutes of decoding, not after
        glossary = None
        if options["glossary"] is not None:
            glossary = Glossary.objects.filter(pk=options["glossary"]).first()
            if glossary is None:
                raise CommandError(f"No glossary with id {options['glossary']}.")
        elif options["compare_glossary"]:
            raise CommandError("--compare-glossary needs --glossary ID.")
        entries = manifest_read(path=options["manifest"])
        variants = [True, False] if options["compare_glossary"] else [glossary is not None]
        configs = configurations(
            models=options["models"] or [lane_model_name("batch")],
            compute_types=options["compute_types"] or [None],
            beam_sizes=options["beam_sizes"],
            batch_sizes=options["batch_sizes"],
            glossary=variants,
            hotwords=_hotword_modes(options["hotwords"]),
        )
        with tqdm(
            total=len(configs) * len(entries) * options["repeat"],
            unit="decode",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        ) as bar:

            def on_decode(config: BenchConfig) -> None:
                bar.set_description(config.label, refresh=False)
                bar.update()

            results = bench_run(
                entries=entries,
                configs=configs,
                glossary=glossary,
                post_correction=options["post_correction"],
                repeat=options["repeat"],
                device=options["device"],
                cpu_threads=options["cpu_threads"],
                seed=options["seed"],
                on_decode=on_decode,
            )
        for note in dict.fromkeys(n for r in results for n in r.notes):
            self.stderr.write(f"note: {note}")
        if options["plot"]:
            audio_s = results[0].audio_s
            title = (
                f"scribe bench: {options['manifest'].name} "
                f"({len(entries)} file{'s' if len(entries) != 1 else ''}, {audio_s:.0f} s of audio)"
            )
            self.stderr.write(f"wrote {plot_write(results, path=options['plot'], title=title)}")
        if options["json"]:
            report = report_json(
                results, manifest=options["manifest"], glossary_id=options["glossary"]
            )
            self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
            return
        self.stdout.write(table_render(results))
        for line in [*glossary_effects(results), *hybrid_verdicts(results)]:
            self.stdout.write(line)


def _hotword_modes(raw: str) -> list[str]:
    modes = [m.strip() for m in raw.split(",") if m.strip()]
    unknown = sorted(set(modes) - {"chosen", "all"})
    if unknown or not modes:
        raise CommandError(f"--hotwords takes chosen, all or chosen,all; not {raw!r}.")
    return modes
