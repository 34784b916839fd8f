"""Accuracy measures for mixed Korean–English transcripts: WER, CER, term recall.

The normaliser (documented, so figures are comparable): Unicode NFKC, case folded,
punctuation and symbols removed, whitespace collapsed. WER counts words; CER counts
characters with spaces removed (the measure for Korean, whose word spacing varies). Both
are computed by ``jiwer`` on normalised text, so the alignment is a standard one while the
normalisation stays ours (jiwer's own transforms neither fold Unicode nor drop symbols).

Term measures are case-sensitive and verbatim on purpose: "vllm" is not "vLLM". A term
written in Latin letters or digits only counts where it is not glued to other Latin letters
or digits ("CI" is not found in "CIA"), but may touch Hangul, so "API를" holds "API".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text)
    return " ".join(kept.split())


@dataclass(frozen=True)
class ErrorCount:
    """Edits (substitutions + deletions + insertions) against a reference of ``length``."""

    errors: int
    length: int

    @property
    def rate(self) -> float:
        if not self.length:
            return 0.0 if not self.errors else 1.0
        return self.errors / self.length


def _count(output: jiwer.WordOutput | jiwer.CharacterOutput) -> ErrorCount:
    return ErrorCount(
        errors=output.substitutions + output.deletions + output.insertions,
        length=output.hits + output.substitutions + output.deletions,
    )


def word_errors(reference: str, hypothesis: str) -> ErrorCount:
    """Count word edits between the normalised texts."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return ErrorCount(len(hyp.split()), 0)
    if not hyp:
        return ErrorCount(len(ref.split()), len(ref.split()))
    return _count(jiwer.process_words(ref, hyp))


def char_errors(reference: str, hypothesis: str) -> ErrorCount:
    """Count character edits between the normalised texts, spaces removed."""
    ref = normalise(reference).replace(" ", "")
    hyp = normalise(hypothesis).replace(" ", "")
    if not ref or not hyp:
        return ErrorCount(len(hyp) if not ref else len(ref), len(ref))
    return _count(jiwer.process_characters(ref, hyp))


def wer(reference: str, hypothesis: str) -> float:
    return word_errors(reference, hypothesis).rate


def cer(reference: str, hypothesis: str) -> float:
    return char_errors(reference, hypothesis).rate


def reference_words(reference: str) -> int:
    return len(normalise(reference).split())


def term_preservation(reference: str, hypothesis: str, terms: Sequence[str]) -> float | None:
    """Share of the glossary terms said in ``reference`` that appear verbatim in
    ``hypothesis`` (each occurrence counted); None when the reference has none."""
    expected = found = 0
    for term in terms:
        wanted = reference.count(term)
        expected += wanted
        found += min(wanted, hypothesis.count(term))
    return found / expected if expected else None


def _is_latin_or_digit(char: str) -> bool:
    return char.isascii() and char.isalnum()


def term_occurrences(text: str, term: str) -> int:
    """Count where ``term`` stands verbatim in ``text`` (see the module docstring)."""
    if not term:
        return 0
    pattern = re.escape(term)
    if _is_latin_or_digit(term[0]):
        pattern = r"(?<![A-Za-z0-9])" + pattern
    if _is_latin_or_digit(term[-1]):
        pattern += r"(?![A-Za-z0-9])"
    return len(re.findall(pattern, text))


@dataclass(frozen=True)
class TermScore:
    """How the terms said in one reference came through in its hypothesis.

    ``said`` maps each expected term to the times it is said; a term is recalled when the
    hypothesis spells it verbatim at least that many times. ``inserted`` maps a known term
    to the occurrences the hypothesis has beyond what was said (a term never said counts
    each time it appears): biasing the decoder towards a glossary invites these.
    """

    said: dict[str, int]
    recalled: tuple[str, ...]
    inserted: dict[str, int]
    reference_words: int

    @property
    def missed(self) -> tuple[str, ...]:
        return tuple(t for t in self.said if t not in self.recalled)

    @property
    def recall(self) -> float | None:
        return len(self.recalled) / len(self.said) if self.said else None

    @property
    def insertions(self) -> int:
        return sum(self.inserted.values())

    @property
    def insertion_rate(self) -> float:
        """False-term insertions per reference word."""
        if not self.reference_words:
            return 0.0 if not self.insertions else 1.0
        return self.insertions / self.reference_words


def term_score(
    reference: str,
    hypothesis: str,
    *,
    said: Sequence[str] | None,
    known: Sequence[str] = (),
) -> TermScore:
    """Score term recall and false-term insertions of ``hypothesis``.

    ``said`` lists the terms spoken in the audio (each counted at least once, more if the
    reference spells it more often); None takes the ``known`` terms (a glossary's) that
    the reference spells. Insertions are counted over ``said`` and ``known`` together.
    """
    if said is None:
        said = [t for t in known if term_occurrences(reference, t)]
    expected = {t: max(term_occurrences(reference, t), 1) for t in dict.fromkeys(said) if t}
    recalled = tuple(t for t, n in expected.items() if term_occurrences(hypothesis, t) >= n)
    inserted: dict[str, int] = {}
    for term in dict.fromkeys([*expected, *known]):
        if not term:
            continue
        allowed = expected.get(term, term_occurrences(reference, term))
        extra = term_occurrences(hypothesis, term) - allowed
        if extra > 0:
            inserted[term] = extra
    return TermScore(
        said=expected,
        recalled=recalled,
        inserted=inserted,
        reference_words=reference_words(reference),
    )
