"""Correct spans of a transcript that sound like a glossary term. Pure functions.

Whisper writes a term it does not know as whatever it heard: "qber needs", "pie torch",
"CRPC", "쿠버네티스". ``apply_glossary`` fixes the spellings an operator listed; this package
catches the ones nobody listed, by sound: ``forms`` derives how each term can be said
(``numbers`` for numbers), ``romanise`` reads Hangul the way loanwords were written, and
``matcher`` scores spans of a text against the forms. How a span is judged, the guards
and the known limits: docs/glossary-design.md ("Sound-alike correction").
"""

from glossary.soundalike.forms import LETTER_NAMES, SpokenForm, spoken_forms
from glossary.soundalike.matcher import (
    DEFAULT_THRESHOLD,
    FUNCTION_WORDS,
    SHORT_TERM_CHARS,
    SoundAlike,
    SoundAlikeMatcher,
    apply_soundalike,
    soundalike_matches,
)
from glossary.soundalike.numbers import DIGITS, NUMBER_WORDS, has_digit, is_digits, number_words
from glossary.soundalike.romanise import metaphone, romanisations, romanise

__all__ = [
    "DEFAULT_THRESHOLD",
    "DIGITS",
    "FUNCTION_WORDS",
    "LETTER_NAMES",
    "NUMBER_WORDS",
    "SHORT_TERM_CHARS",
    "SoundAlike",
    "SoundAlikeMatcher",
    "SpokenForm",
    "apply_soundalike",
    "has_digit",
    "is_digits",
    "metaphone",
    "number_words",
    "romanisations",
    "romanise",
    "soundalike_matches",
    "spoken_forms",
]
