"""Which glossary terms a first pass may have heard: the search behind per-window hotwords.

Built for recall, not certainty (the biased decode still has to hear a term): spans cross
punctuation, acronyms are read by their letter names, numbers in words, no first-sound
rule; three guards against classes of false offers. Latin text only. Why, with the
measurements behind the thresholds: docs/glossary-design.md ("Which terms a first pass
heard").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice, product

import numpy as np
from rapidfuzz.distance import Indel
from rapidfuzz.process import cdist

from glossary.normalize import TermSpec
from glossary.soundalike import (
    DIGITS,
    FUNCTION_WORDS,
    LETTER_NAMES,
    NUMBER_WORDS,
    SHORT_TERM_CHARS,
    has_digit,
    is_digits,
    metaphone,
    number_words,
    spoken_forms,
)

# Low: the bias is cheap where it is wrong (the decode has to hear the term), costly where
# a term is missing. Measured on tiny.en's first passes: docs/glossary-design.md.
OFFER_THRESHOLD = 0.69
# The most words of the first pass read as one span ("post the rescue hell": PostgreSQL).
MAX_SPAN_WORDS = 5
# Spellings tried per span (each word has at most three: letters, letter names, numbers).
MAX_SPELLINGS = 8

# A contraction or possessive is one word ("that's", "CDF's"): its "s" is no spoken S.
WORD = re.compile(rf"[A-Za-z]+(?:'[A-Za-z]+)*|{DIGITS}+")
# A span with digits meets a term with letters and digits only where their letters are
# this alike too: the digits alone do not make "that 16" float16.
LETTERS_BESIDE_DIGITS = 0.5
_NOT_ALNUM = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Offer:
    term: str  # canonical spelling
    heard: str  # the words of the first pass it was found in
    score: float
    start: int = 0  # where ``heard`` stands in the text searched
    end: int = 0


def _said_as_letters(word: str) -> bool:
    """Whether Whisper wrote ``word`` as spoken letters or a number ("DCR", "V", "400",
    "CDF's")."""
    if is_digits(word):
        return True
    stem = word.split("'")[0]
    return (len(stem) > 1 and stem.isupper()) or (
        word == stem and len(stem) == 1 and stem.lower() not in "ai"
    )


def _spellings(word: str) -> list[str]:
    """Ways a word of the first pass may have been said, as lower-case letters."""
    if is_digits(word):
        return [word, *(said.replace(" ", "") for said in number_words(word)[0])]
    stem, _, tail = word.lower().partition("'")
    lower = stem + tail.replace("'", "")
    if _said_as_letters(word):
        return [lower, "".join(LETTER_NAMES[c] for c in stem) + tail.replace("'", "")]
    return [lower]


def _letters_only(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalpha())


def _is_number(word: str) -> bool:
    return is_digits(word) or word.casefold() in NUMBER_WORDS


def _letters_match(words: Sequence[re.Match[str]], letters: str) -> bool:
    """Whether a span with a number in it has the letters of a term written with digits:
    the number alone does not make "that 16" float16."""
    if not any(_is_number(m.group()) for m in words):
        return True
    rest = "".join(_letters_only(m.group()) for m in words if not _is_number(m.group()))
    return Indel.normalized_similarity(rest, letters) >= LETTERS_BESIDE_DIGITS


class TermOffer:
    """Find the glossary terms a first pass heard, or heard something like; build once."""

    def __init__(self, terms: Sequence[TermSpec], *, threshold: float = OFFER_THRESHOLD):
        self.threshold = threshold
        self._form_term: list[int] = []
        letters: list[str] = []
        self.canonical: list[str] = []
        self._short: list[bool] = []
        self._lettered: list[bool] = []  # the term has letters, not only digits
        self._beside_digits: list[str] = []
        for term in terms:
            if not term.canonical.strip():
                continue
            index = len(self.canonical)
            self.canonical.append(term.canonical)
            self._short.append(len(_NOT_ALNUM.sub("", term.canonical)) <= SHORT_TERM_CHARS)
            self._lettered.append(any(c.isalpha() for c in term.canonical))
            # The letters of a term written with digits ("float" of float16), else "".
            self._beside_digits.append(
                _letters_only(term.canonical) if has_digit(term.canonical) else ""
            )
            said = {
                form.letters
                for spelling in (term.canonical, *term.variants)
                for form in spoken_forms(spelling)
                if form.latin
            }
            for form_letters in sorted(said):
                letters.append(form_letters)
                self._form_term.append(index)
        self._letters = letters
        self._metaphones = [metaphone(f) for f in letters]
        self._form_digits = np.array([has_digit(f) for f in letters], dtype=bool)
        self._term_of_form = np.array(self._form_term, dtype=np.intp)

    def offers(self, heard: str) -> list[Offer]:
        """Return the terms found in ``heard``, best first, one span each."""
        words = [m for m in WORD.finditer(heard)]
        if not words or not self._letters:
            return []
        found = self._spans(heard)
        spans = [span for span, _ in found]
        spellings = [spelling for _, spelling in found]
        if not spellings:
            return []
        scores = self._scores(spellings)
        return self._resolve(scores, spans, words, heard)

    def __call__(self, heard: str) -> list[str]:
        return [offer.term for offer in self.offers(heard)]

    def closeness(self, heard: str) -> dict[str, float]:
        """Each term's best score against any span of ``heard`` (0 where none compares),
        without the guards or the one-term-per-span rule: a ranking, not an offer."""
        spellings = [spelling for _, spelling in self._spans(heard)]
        if not spellings:
            return dict.fromkeys(self.canonical, 0.0)
        best = self._scores(spellings).max(axis=0)
        close = dict.fromkeys(self.canonical, 0.0)
        for column, score in enumerate(best):
            term = self.canonical[int(self._term_of_form[column])]
            close[term] = max(close[term], round(float(score), 3))
        return close

    def _spans(self, heard: str) -> list[tuple[tuple[int, int], str]]:
        """Every run of up to MAX_SPAN_WORDS words not all function words, in each of its
        likely spellings: ((first word, last word), spelling)."""
        words = [m for m in WORD.finditer(heard)]
        options = [_spellings(m.group()) for m in words]
        function = [m.group().casefold() in FUNCTION_WORDS for m in words]
        spans: list[tuple[tuple[int, int], str]] = []
        for first in range(len(words)):
            for last in range(first, min(first + MAX_SPAN_WORDS, len(words))):
                if all(function[first : last + 1]):
                    continue
                for combo in islice(product(*options[first : last + 1]), MAX_SPELLINGS):
                    spans.append(((first, last), "".join(combo)))
        return spans

    def _scores(self, spellings: list[str]) -> np.ndarray:
        """Score every spelling against every form: (spellings × forms), 0 where a digit
        would meet a letter."""
        spelling = cdist(spellings, self._letters, scorer=Indel.normalized_similarity)
        sound = cdist(
            [metaphone(s) for s in spellings],
            self._metaphones,
            scorer=Indel.normalized_similarity,
        )
        scores = (spelling + sound) / 2
        digits = np.array([has_digit(s) for s in spellings], dtype=bool)
        scores[digits[:, None] != self._form_digits[None, :]] = 0.0
        return scores

    def _resolve(
        self,
        scores: np.ndarray,
        spans: list[tuple[int, int]],
        words: list[re.Match[str]],
        heard: str,
    ) -> list[Offer]:
        """Best span per term, then greedily: one term per span, best score first."""
        candidates: dict[tuple[int, tuple[int, int]], float] = {}
        lettered = [_said_as_letters(m.group()) for m in words]
        numeric = [
            is_digits(m.group()) or m.group().casefold() in NUMBER_WORDS | FUNCTION_WORDS
            for m in words
        ]
        for row, column in zip(*np.nonzero(scores >= self.threshold), strict=True):
            term, (first, last) = int(self._term_of_form[column]), spans[row]
            if self._lettered[term] and all(numeric[first : last + 1]):
                continue
            if self._beside_digits[term] and not _letters_match(
                words[first : last + 1], self._beside_digits[term]
            ):
                continue
            if (
                self._short[term]
                and scores[row, column] < 1.0
                and not any(lettered[first : last + 1])
            ):
                continue
            key = (term, spans[row])
            candidates[key] = max(candidates.get(key, 0.0), float(scores[row, column]))
        ranked = sorted(
            candidates.items(), key=lambda item: (-item[1], item[0][1][0] - item[0][1][1])
        )
        offered: dict[int, Offer] = {}
        taken: list[tuple[int, int]] = []
        for (term, (first, last)), score in ranked:
            if term in offered or any(first <= end and start <= last for start, end in taken):
                continue
            taken.append((first, last))
            start, end = words[first].start(), words[last].end()
            offered[term] = Offer(
                self.canonical[term], heard[start:end], round(score, 3), start, end
            )
        return list(offered.values())
