"""manage.py bench MANIFEST: accuracy and speed on files with reference transcripts.

The manifest is JSON lines: {"audio": "path", "reference": "text", "language": "ko"}
(paths relative to the manifest). With --glossary, decoding is biased by the glossary
and its post-correction runs, and verbatim preservation of its terms is measured.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from glossary.metrics import cer, term_preservation, wer
from glossary.models import Glossary
from glossary.services import (
    MODES,
    glossary_bias,
    hallucination_phrases,
    post_process,
    rule_specs,
    term_specs,
)
from transcription.engine import EngineError, TranscribeOptions, token_counter, transcribe
from transcription.services import DeviceOverrides, device_plan_build, lane_model_name, model_load


class Command(BaseCommand):
    help = "Measure WER, CER, glossary term preservation and speed on a manifest."

    def add_arguments(self, parser):
        parser.add_argument("manifest", type=Path)
        parser.add_argument("--model", help="hub name or local directory (default: batch lane)")
        parser.add_argument("--device")
        parser.add_argument("--compute-type")
        parser.add_argument("--glossary", type=int, help="glossary id for bias and correction")
        parser.add_argument("--post-correction", choices=MODES, default="rules")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        entries = self._manifest(options["manifest"])
        model = options["model"] or lane_model_name("batch")
        glossary = None
        if options["glossary"]:
            glossary = Glossary.objects.filter(pk=options["glossary"]).first()
            if glossary is None:
                raise CommandError(f"No glossary with id {options['glossary']}.")
        terms = term_specs(glossary)
        try:
            plan = device_plan_build(
                model=model,
                overrides=DeviceOverrides(
                    device=options["device"], compute_type=options["compute_type"], workers=1
                ),
            )
            loaded = model_load(model=model, plan=plan)
        except EngineError as exc:
            raise CommandError(exc.message) from None
        bias = glossary_bias(terms=terms, count_tokens=token_counter(loaded))
        rows = []
        for entry in entries:
            try:
                transcript = transcribe(
                    entry["audio"],
                    loaded,
                    TranscribeOptions(
                        language=entry.get("language"),
                        hotwords=bias.hotwords,
                        initial_prompt=bias.initial_prompt,
                    ),
                )
            except EngineError as exc:
                raise CommandError(exc.message) from None
            mode = options["post_correction"] if glossary else "none"
            result = post_process(
                transcript.to_dict(),
                mode=mode,
                terms=terms,
                rules=rule_specs(glossary),
                phrases=hallucination_phrases(),
            )
            hypothesis, reference = result["text"], entry["reference"]
            rows.append(
                {
                    "audio": str(entry["audio"]),
                    "wer": round(wer(reference, hypothesis), 4),
                    "cer": round(cer(reference, hypothesis), 4),
                    "term_preservation": term_preservation(
                        reference, hypothesis, [t.canonical for t in terms]
                    ),
                    "real_time_factor": transcript.metrics.real_time_factor,
                    "audio_s": transcript.duration_s,
                }
            )
        summary = self._summary(rows)
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {"files": rows, "summary": summary, "model": model, "bias": bias.kept}, indent=2
                )
            )
            return
        for row in rows:
            preserved = row["term_preservation"]
            self.stdout.write(
                f"{row['audio']}: WER {row['wer']:.3f}  CER {row['cer']:.3f}  terms "
                f"{'n/a' if preserved is None else f'{preserved:.1%}'}  RTF "
                f"{row['real_time_factor']:.3f}"
            )
        self.stdout.write(
            f"all ({len(rows)} files, {summary['audio_s']:.0f} s): WER {summary['wer']:.3f}  "
            f"CER {summary['cer']:.3f}  terms {summary['term_preservation']}  "
            f"RTF {summary['real_time_factor']:.3f}"
        )

    def _manifest(self, path: Path) -> list[dict]:
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")
        entries = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                entry["audio"] = (path.parent / entry["audio"]).resolve()
                entry["reference"] = str(entry["reference"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CommandError(
                    f'{path}:{number}: need {{"audio", "reference"}} JSON ({exc}).'
                ) from None
            entries.append(entry)
        if not entries:
            raise CommandError(f"{path} lists no files.")
        return entries

    @staticmethod
    def _summary(rows: list[dict]) -> dict:
        total = sum(r["audio_s"] for r in rows) or 1.0

        def weighted(key: str) -> float:
            return round(sum(r[key] * r["audio_s"] for r in rows) / total, 4)

        preserved = [r["term_preservation"] for r in rows if r["term_preservation"] is not None]
        return {
            "wer": weighted("wer"),
            "cer": weighted("cer"),
            "real_time_factor": weighted("real_time_factor"),
            "audio_s": round(total, 3),
            "term_preservation": round(sum(preserved) / len(preserved), 4) if preserved else None,
        }
