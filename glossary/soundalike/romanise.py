"""Hangul romanised the way English loanwords were transliterated, and the sound keys
spans and terms are compared on (Metaphone for Latin text, a loanword key for Hangul).
Why these keys: docs/glossary-design.md ("Sound-alike correction").
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import islice, product

import jellyfish

from glossary.soundalike.numbers import is_digits

# Hangul jamo, romanised for English loanwords rather than by the Revised Romanization:
# the aim is the English spelling a transliteration came from ("도커" → "doker").
_INITIALS = [
    "g", "k", "n", "d", "t", "r", "m", "b", "p", "s", "s", "", "j", "j", "ch", "k", "t", "p", "h",
]  # fmt: skip
_MEDIALS = [
    "a", "a", "ya", "ya", "eo", "e", "yeo", "ye", "o", "wa", "wa", "we", "yo", "u", "wo", "we",
    "wi", "yu", "eu", "ui", "i",
]  # fmt: skip
_FINALS = [
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p",
    "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
]  # fmt: skip
_RIEUL, _SILENT, _EO, _EU, _I = 5, 11, 4, 18, 20
_CH_OR_J = {12, 13, 14}  # ㅈ ㅉ ㅊ
_RIEUL_FINAL = 8


def romanise(hangul: str) -> str:
    """Romanise Hangul syllables the way English loanwords were transliterated."""
    return romanisations(hangul)[0]


def romanisations(hangul: str, limit: int = 8) -> list[str]:
    """Return the likely English spellings behind a transliteration, likeliest first.

    ㅓ stands for English "er" (버 in 쿠버네티스), "o" (컨) or "u" (허 in 허깅페이스), so each ㅓ
    syllable yields two spellings; the others yield one.
    """
    syllables: list[list[str]] = []
    previous_final = 0
    for position, char in enumerate(hangul):
        code = ord(char) - 0xAC00
        if not 0 <= code < 11172:
            syllables.append([char.lower()])
            previous_final = 0
            continue
        initial, medial, final = code // 588, (code % 588) // 28, code % 28
        onset = "l" if initial == _RIEUL and previous_final == _RIEUL_FINAL else _INITIALS[initial]
        vowels = [_MEDIALS[medial]]
        if medial == _EO:
            vowels = ["o" if final else "er", "u"]  # 버 "ber", 컨 "kon", 허 "hu"
        elif medial == _EU and not final and initial != _SILENT:
            # The vowel Korean adds after a final consonant: 스 "s", 트 "t". A bare 으 has
            # no consonant to carry; it is a syllable said, the 으 of the particle 으로.
            vowels = [""]
        elif medial == _I and not final and initial in _CH_OR_J and 0 < position == len(hangul) - 1:
            vowels = [""]  # 토치 "toch", 브릿지 "brij"
        syllables.append([onset + vowel + _FINALS[final] for vowel in vowels])
        previous_final = final
    return ["".join(combo) for combo in islice(product(*syllables), limit)]


@lru_cache(maxsize=8192)
def loan_key(latin: str) -> str:
    """Return the consonant skeleton that survives English → Korean borrowing.

    Classes: P (b p f v), T (d t), K (g k c q), S (s z j ch sh th, soft c: Korean writes
    an English z or final s as ㅈ or ㅅ alike, 쿠버네티즈 and 쿠버네티스), L (l r), M, N; h, w,
    y and vowels dropped, a leading vowel kept as A, r after a vowel and before a consonant
    or the end dropped (Korean has no coda r: 도커, 파이토치), repeats collapsed. Applied to
    English and to romanised Hangul alike.
    """
    s = _NOT_LOWER.sub("", latin.lower())
    if not s:
        return ""
    s = _BORROWED.sub(lambda m: _BORROWED_AS[m.group()], s)
    lead = "A" if s[0] in "aeiouwy" else ""  # 유 "yu", 와 "wa" begin with a vowel too
    return lead + _collapse(s.translate(_CLASSES))


def _collapse(s: str) -> str:
    """Collapse repeated letters; digits stay ("100" is not "10")."""
    return _REPEATED_LETTER.sub(r"\1", s)


_REPEATED_LETTER = re.compile(r"([^0-9])\1+")


@lru_cache(maxsize=8192)
def metaphone(letters: str) -> str:
    """Metaphone of the letters, with digits kept in place (jellyfish drops them)."""
    return "".join(
        run if is_digits(run) else jellyfish.metaphone(run) for run in _RUNS.findall(letters)
    )


@lru_cache(maxsize=8192)
def as_hangul(latin: str) -> str:
    """Respell letters with only the distinctions Hangul keeps: no f, v, z, soft or hard c.

    Romanised Hangul never brings back "f" or "c" ("허깅페이스" reads "huggingpeis"), so
    Hangul spans are compared on this spelling of both sides: "hugingpeis" against
    "hugingpas" (the form, its silent e dropped) rather than "huggingface".
    """
    s = _SOFT_C.sub("s", latin.replace("ph", "p").replace("ck", "k").replace("ch", "\0"))
    return _collapse(s.translate(_HANGUL_LESS))


_SOFT_C = re.compile(r"c(?=[eiy])")
_HANGUL_LESS = str.maketrans(
    {"\0": "ch", "c": "k", "q": "k", "f": "p", "v": "b", "z": "j", "x": "ks", "y": "i", "w": "u"}
)
_NOT_LOWER = re.compile(r"[^a-z0-9]+")  # a digit is a sound of its own
# One pass; "c" and "r" are only reached through their lookarounds.
_BORROWED = re.compile(r"tch|ch|dj|sh|th|ph|ck|qu|x|c(?=[eiy])|(?<=[aeiouy])r(?![aeiouy])")
_BORROWED_AS = {
    "tch": "S", "ch": "S", "dj": "S", "sh": "S", "th": "S", "ph": "f", "ck": "k",
    "qu": "kw", "x": "ks", "c": "s", "r": "",
}  # fmt: skip
_CLASSES = str.maketrans(
    {
        **dict.fromkeys("bpfv", "P"),
        **dict.fromkeys("dt", "T"),
        **dict.fromkeys("gkcq", "K"),
        **dict.fromkeys("szj", "S"),
        **dict.fromkeys("lr", "L"),
        "m": "M",
        "n": "N",
        **dict.fromkeys("aeiouhwy", None),
    }
)
_RUNS = re.compile(r"[0-9]+|[^0-9]+")
