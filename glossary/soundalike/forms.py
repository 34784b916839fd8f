"""Each way a glossary term can be said, derived from its spelling alone: camel-case and
hyphenated parts, letters said by their English or Korean names, numbers in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice, product

from glossary.soundalike.numbers import DIGITS, is_digits, number_words
from glossary.soundalike.romanise import as_hangul, romanise

# Cap on the spoken forms derived for one term (the product of its parts' alternatives),
# and on the combinations of alternatives tried for them: alternatives that say the same
# letters ("..." as "dot" and "" in any order) would otherwise be tried 2**n times over.
MAX_FORMS = 96
MAX_COMBINATIONS = 8 * MAX_FORMS

_HANGUL_SYLLABLES = re.compile(r"[\uac00-\ud7a3]+")
_CAMEL_PARTS = re.compile(
    rf"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|{DIGITS}+|[\uac00-\ud7a3]+|[^\sA-Za-z0-9]"
)
NOT_ALNUM = re.compile(r"[\W_]+")
# A raised or lowered digit is said as the digit: H₂O is "H two O", m² "m two".
_SAID_AS_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉", "0123456789" * 2)

LETTER_NAMES = {
    "a": "ay", "b": "bee", "c": "see", "d": "dee", "e": "ee", "f": "ef", "g": "gee",
    "h": "aitch", "i": "eye", "j": "jay", "k": "kay", "l": "el", "m": "em", "n": "en",
    "o": "oh", "p": "pee", "q": "cue", "r": "ar", "s": "es", "t": "tee", "u": "you",
    "v": "vee", "w": "doubleyou", "x": "ex", "y": "why", "z": "zee",
}  # fmt: skip
KOREAN_LETTER_NAMES = {
    "a": "에이", "b": "비", "c": "씨", "d": "디", "e": "이", "f": "에프", "g": "지",
    "h": "에이치", "i": "아이", "j": "제이", "k": "케이", "l": "엘", "m": "엠", "n": "엔",
    "o": "오", "p": "피", "q": "큐", "r": "알", "s": "에스", "t": "티", "u": "유",
    "v": "브이", "w": "더블유", "x": "엑스", "y": "와이", "z": "지",
}  # fmt: skip
SYMBOL_WORDS = {".": ("", "dot"), "+": ("plus",), "#": ("sharp",), "&": ("and",)}


@dataclass(frozen=True)
class _Alternative:
    text: str  # as said, romanised where Korean
    latin: bool
    letter_names: bool  # said letter by letter with English letter names
    words: int  # the most words it can be written in ("RPC" as "r p c": three)


def _part_alternatives(part: str) -> list[_Alternative]:
    if is_digits(part):
        english, korean = number_words(part)
        return [
            _Alternative(part, True, False, 1),
            *(_Alternative(said, True, False, len(said.split())) for said in english),
            *(_Alternative(romanise(said), False, False, 1) for said in korean),
        ]
    if _HANGUL_SYLLABLES.fullmatch(part):
        return [_Alternative(romanise(part), False, False, 1)]
    if part.isalpha() and part.isascii():
        lower = part.lower()
        if not (part.isupper() or len(part) == 1):
            return [_Alternative(lower, True, False, 1)]
        # An acronym or a lone letter ("gRPC", "v3"): its letters, English letter names,
        # Korean letter names.
        names = " ".join(LETTER_NAMES[c] for c in lower)
        hangul = romanise("".join(KOREAN_LETTER_NAMES[c] for c in lower))
        return [
            _Alternative(lower, True, False, len(part)),
            _Alternative(names, True, True, len(part)),
            _Alternative(hangul, False, False, len(part)),
        ]
    if part in SYMBOL_WORDS:
        return [_Alternative(said, True, False, 1) for said in SYMBOL_WORDS[part]]
    return [_Alternative("", True, False, 0)]  # a hyphen or other joiner is not said


@dataclass(frozen=True)
class SpokenForm:
    letters: str  # lower-case letters and digits as said, no spaces: "comfyyoueye"
    latin: bool  # all of it English (not Korean letter names or numbers)
    letter_names: bool  # some part spelled with English letter names
    words: int  # the most words it can be written in
    as_hangul: str  # respelled as a Hangul transliteration would bring it back


def spoken_forms(canonical: str) -> list[SpokenForm]:
    """Return each way the term can be said, derived from its spelling alone."""
    parts = _CAMEL_PARTS.findall(canonical.translate(_SAID_AS_DIGITS))
    options = [_part_alternatives(part) for part in parts]
    for edge in {0, len(options) - 1} if options else ():
        # A symbol is silent only between words ("node js"); ".NET" is not "net".
        said = [alt for alt in options[edge] if alt.text]
        options[edge] = said or options[edge]
    forms: dict[str, SpokenForm] = {}
    for combo in islice(product(*options), MAX_COMBINATIONS):
        letters = NOT_ALNUM.sub("", "".join(alt.text for alt in combo))
        if not letters or letters in forms:
            continue
        # Hangul does not write an English silent e (페이스 is "face"), so a form compared
        # with Hangul drops it; romanised Korean keeps every e, each one is said. The e
        # goes after the respelling, which reads the c before it as soft: "face" is "pas",
        # not "pak" (a form that far off lets a particle's vowel, 허깅페이스와, pass for it).
        heard = "".join(
            _SILENT_E.sub("", as_hangul(alt.text)) if alt.latin else alt.text for alt in combo
        )
        forms[letters] = SpokenForm(
            letters,
            latin=all(alt.latin for alt in combo),
            letter_names=any(alt.letter_names for alt in combo),
            words=sum(alt.words for alt in combo),
            as_hangul=as_hangul(NOT_ALNUM.sub("", heard)),
        )
        if len(forms) >= MAX_FORMS:
            break
    return list(forms.values())


_SILENT_E = re.compile(r"(?<=[a-z][bcdfgklmnprstvz])e\b")
