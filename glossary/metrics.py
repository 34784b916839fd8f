"""Accuracy measures for mixed Korean–English transcripts: WER, CER, term preservation.

The normaliser (documented, so figures are comparable): Unicode NFKC, case folded,
punctuation and symbols removed, whitespace collapsed. WER counts words; CER counts
characters with spaces removed (the measure for Korean, whose word spacing varies).
Term preservation is case-sensitive and verbatim on purpose: "vllm" is not "vLLM".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text)
    return " ".join(kept.split())


def _edit_distance(a: Sequence, b: Sequence) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return _edit_distance(ref, hyp) / len(ref)


def cer(reference: str, hypothesis: str) -> float:
    ref = normalise(reference).replace(" ", "")
    hyp = normalise(hypothesis).replace(" ", "")
    if not ref:
        return 0.0 if not hyp else 1.0
    return _edit_distance(ref, hyp) / len(ref)


def term_preservation(reference: str, hypothesis: str, terms: Sequence[str]) -> float | None:
    """Share of the glossary terms said in ``reference`` that appear verbatim in
    ``hypothesis`` (each occurrence counted); None when the reference has none."""
    expected = found = 0
    for term in terms:
        wanted = reference.count(term)
        expected += wanted
        found += min(wanted, hypothesis.count(term))
    return found / expected if expected else None
