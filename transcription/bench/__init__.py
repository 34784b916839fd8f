"""The measuring tool behind ``manage.py bench``: accuracy, terms, speed and memory.

A manifest (JSON lines or CSV) lists audio files with what was said in them and,
optionally, which terms. Every configuration of the grid — model × compute type × beam
size × batch size, each with and without the glossary when asked — decodes every file
through scribe's own services (device plan, model load, the engine's ``transcribe``, the
glossary's bias and post-correction), and is scored:

- WER and CER by ``jiwer`` on text normalised by ``glossary.metrics.normalise`` (NFKC,
  case folded, punctuation and symbols dropped; CER without spaces, for Korean), pooled
  over the manifest: all edits over all reference words or characters.
- term recall: a term said counts when the hypothesis spells it verbatim (case-sensitive)
  at least as often as the reference does; the terms said are the entry's ``terms``, else
  the glossary's terms found in the reference.
- false-term insertions: occurrences of the glossary's or the entry's terms beyond what
  the reference says, per reference word (hotwords invite these).
- RTF: processing (decode and post-correction, median of ``--repeat`` runs) over audio.
- load time: bringing the weights onto the device (after download and checksum).
- peak RSS of the process while the configuration loaded and ran.
"""

from transcription.bench.manifest import BenchError, ManifestEntry, manifest_read
from transcription.bench.report import (
    glossary_effects,
    hybrid_verdicts,
    plot_available,
    plot_write,
    report_json,
    table_render,
    verdict_line,
)
from transcription.bench.runner import BenchConfig, ConfigResult, bench_run, configurations
from transcription.bench.synthesize import speech_synthesize

__all__ = [
    "BenchConfig",
    "BenchError",
    "ConfigResult",
    "ManifestEntry",
    "bench_run",
    "configurations",
    "glossary_effects",
    "hybrid_verdicts",
    "manifest_read",
    "plot_available",
    "plot_write",
    "report_json",
    "speech_synthesize",
    "table_render",
    "verdict_line",
]
