"""Correct spans of a transcript that sound like a glossary term. Pure functions.

Whisper writes a term it does not know as whatever it heard: "qber needs", "pie torch",
"CRPC", "쿠버네티스". ``apply_glossary`` fixes the spellings an operator listed; this module
catches the ones nobody listed, by sound.

How a span is judged:

* **Candidates** are runs of 1..N whole words (N = the most words a term can be spoken in,
  plus two), joined only by spaces or hyphens. A word is a maximal run of letters and
  digits of one script, so "Redis" is never found inside "Redistribute" and "Docker" never
  inside "Dockerfile"; punctuation is never part of a word, so a trailing comma or period
  stays outside the replacement. A Hangul word may end in Korean particles ("쿠버네티스에서"):
  the transliteration is matched and the particles are kept ("Kubernetes에서"); any other
  Hangul tail ("도커파일") means a different word, which is left alone.
* **Spoken forms** of each term are derived generically from its spelling: camel case and
  hyphens split it into parts ("ComfyUI" → "Comfy" "UI"; "large-v3" → "large" "v" "3");
  a capitalised run or a lone letter may be said as its letters ("UI" → "you eye"),
  digits as number words ("16" → "sixteen" / "one six", "100" → "one hundred" / "a
  hundred"), and in Korean speech as Korean letter names ("지알피씨") and Sino-Korean numbers
  ("에이 백"). The operator's variants are forms too, so a near miss of a variant counts.
* **Score** (0..1) is the mean of a phonetic and a spelling similarity (rapidfuzz's Indel
  similarity) against the best form. Latin text: Metaphone keys (jellyfish), and the
  letters. Hangul text is romanised with a table tuned for English loanwords (ㅓ as "er"
  or "u", ㅐ as "a", the epenthetic ㅡ of 스/트/드 dropped, a final 치/지 as "ch"/"j"); both
  sides are respelled without the letters Hangul cannot bring back (f, v, z, c: see
  ``_as_hangul``) and compared on a loanword key (``_loan_key``) instead of Metaphone,
  because Korean borrowing drops a postvocalic r and merges f/p, v/b, z/s/j: "PyTorch"
  becomes 파이토치 with no r, which Metaphone would count against it.

Guards, each generic, each for a class of false positive:

* Terms of at most three letters (CI, ECR, RAG) only match exactly: their letters in any
  case or spacing ("E C R", "ecr") or Korean letter names ("이씨알"). Fuzzy matches of
  two or three letters hit ordinary words, and spoken letter names ("see eye") are
  phrases ("see eye to eye").
* One Latin word that is not all capitals must clear ``threshold + WORD_MARGIN``: a real
  word that Whisper wrote ("reddish", "radios", "Cuban") is usually a word that was said;
  a sound-alike is usually a term broken into words ("pie torch") or a misheard acronym
  ("CRPC"), which clear the plain threshold. A case-only difference scores 1.0 and passes
  ("GRPC" → gRPC), exactly as ``apply_glossary`` (which runs first) already treats
  miscasings: a term that is also a common word (React, Go) is recased everywhere by
  both. Keep such words out of the glossary, or list them as variants of a longer term.
* A function word ("the", "a", "it") is never a span on its own, and a span may begin or
  end with one only when it matches a spoken form exactly ("A one hundred" → A100): "the
  docker" is never a candidate beside "docker". A span's first sound must match the
  term's (the loanword key's first class): "LLM" is not a sound-alike of vLLM, and that
  check is also what keeps the search fast.
* A Hangul span needs at least two syllables, at most ``HANGUL_SPAN_WORDS`` words, and
  exactly as many consonant classes as the term: Korean borrowing adds vowels but keeps
  every consonant (save the coda r, which the key drops), so 레디 ("ready") is not Redis
  and 독서 is not Docker, while 쿠버네티즈 still is Kubernetes.
* A bare 장고 becomes Django. It is also a Korean word (a long deliberation, "장고 끝에"),
  but an operator who put Django in the glossary is transcribing talk about it, and the
  transliteration cannot be told apart from the word by sound; nor can any other.
* The canonical spelling, where it already stands in the text, is never cut into, shrunk
  or extended for its own term; a span for another term may swallow it whole ("패스트
  API" → FastAPI even when API is a term too).

Overlapping candidates are resolved greedily: highest score first, then the span with
more words, then the earlier one.

Known limit: two ordinary words that sound like a term are replaced like any other
sound-alike ("a long chain of events" → "a LangChain of events"); only a dictionary could
tell them apart, and "pie torch" is two ordinary words too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice, product

import jellyfish
from rapidfuzz.distance import Indel

from glossary.normalize import TermSpec

# Tuned on tests/glossary/test_soundalike.py. The score is the mean of a phonetic and a
# spelling similarity, so 0.82 is e.g. the same sound with 64% of the letters shared, or a
# one-letter slip in a ten-letter word with the sound barely changed. The sound-alikes in
# the tests score 0.86–1.0 ("cube or nettys" 0.86, "qber needs" 0.87, "CRPC" 0.88, 랭체인
# 0.89, "pie torch" 0.90); the near misses that reach scoring at all stay at or under 0.80
# (리더스 vs Redis 0.80, 다크 vs Docker 0.75, "reddish" 0.75). 0.82 sits in that gap.
DEFAULT_THRESHOLD = 0.82
# Added to the threshold for one ordinary (not all-capitals) Latin word: see the module
# docstring. "radios" vs Redis scores 0.86 and "Jango" vs Django 0.88 (both stay);
# "Kubernetis" 0.95 (corrected).
WORD_MARGIN = 0.1
# A term of at most this many letters and digits only matches exactly.
SHORT_TERM_CHARS = 3
# Spans can be this many words longer than the longest spoken form of the term.
EXTRA_WORDS = 2
# The first sound of a span is read from this many letters (a Latin "tch" or a Hangul
# "ch" must not be cut in two).
LEAD_CHARS = 4
# Korean writes a transliteration as one or two words ("도커를", "에이 백"), so a span with
# Hangul in it is at most this long.
HANGUL_SPAN_WORDS = 3
# Cap on the spoken forms derived for one term (the product of its parts' alternatives).
MAX_FORMS = 96
# Letter names that rhyme, the classic confusions of spoken letters: the E-set ("bee",
# "see", "dee", "ee", "gee", "pee", "tee", "vee", "zee"), the A-set, the "eh" set, and so
# on. An acronym Whisper wrote that differs from a glossary acronym only in rhyming letters
# ("DCR" for ECR, "BCM" for PCM, "CRBC" for gRPC) scores RHYMING_ACRONYM_SCORE.
RHYMES = ("BCDEGPTVZ", "AHJK", "FLMNSX", "IY", "QUW", "O", "R")
RHYMING_ACRONYM_SCORE = 0.9

FUNCTION_WORDS = frozenset(
    [
        "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "by", "for", "with",
        "from", "is", "are", "was", "were", "be", "it", "its", "this", "that", "as", "if", "so",
        "we", "i", "you", "he", "she", "they", "me", "my", "our", "your", "do", "not", "no",
    ]
)  # fmt: skip

# Korean particles and copula endings that can follow a transliterated term; a Hangul word
# is a candidate only as a whole or as a transliteration followed by one or two of these.
PARTICLES = frozenset(
    [
        "이", "가", "은", "는", "을", "를", "의", "에", "에서", "에게",
        "께", "한테", "로", "으로", "와", "과", "랑", "이랑", "도", "만",
        "까지", "부터", "보다", "처럼", "같이", "하고", "이나", "나", "라", "이라",
        "라는", "이라는", "라고", "이라고", "야", "이야", "예요", "이에요", "입니다", "이고",
        "고", "면", "이면", "인", "엔", "에선", "로서", "으로서", "로써", "으로써",
        "마다", "조차", "밖에", "뿐",
    ]
)  # fmt: skip
_MAX_PARTICLE_CHARS = max(len(p) for p in PARTICLES)

# A contraction or possessive is one word: "They're" holds no span "re …".
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_GAP = re.compile(r"[\s\-]*")
_HANGUL_SYLLABLES = re.compile(r"[\uac00-\ud7a3]+")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[\uac00-\ud7a3]+|[^\sA-Za-z\d]")
_NOT_ALNUM = re.compile(r"[\W_]+")

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

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = frozenset([*_ONES, *_TENS[2:], "hundred", "thousand", "oh"])
_SINO_DIGITS = "영일이삼사오육칠팔구"

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
_RIEUL, _EO, _EU, _I = 5, 4, 18, 20
_CH_OR_J = {12, 13, 14}  # ㅈ ㅉ ㅊ
_RIEUL_FINAL = 8


@dataclass(frozen=True)
class SoundAlike:
    start: int  # character span in the text that was replaced
    end: int
    heard: str  # the replaced text
    term: str  # canonical spelling put in its place
    score: float  # 0..1 similarity


@dataclass(frozen=True)
class _Form:
    term: int  # index into the matcher's terms
    letters: str  # lower-case letters and digits, no spaces
    metaphone: str
    loan_key: str
    as_hangul: str  # letters as a Korean transliteration would bring them back
    latin: bool  # all parts English (a Latin span is compared only with these)


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    hangul: bool


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    term: int
    score: float
    words: int


# --- Hangul --------------------------------------------------------------------------


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
        elif medial == _EU and not final:
            vowels = [""]  # the vowel Korean adds after a final consonant: 스 "s", 트 "t"
        elif medial == _I and not final and initial in _CH_OR_J and 0 < position == len(hangul) - 1:
            vowels = [""]  # 토치 "toch", 브릿지 "brij"
        syllables.append([onset + vowel + _FINALS[final] for vowel in vowels])
        previous_final = final
    return ["".join(combo) for combo in islice(product(*syllables), limit)]


@lru_cache(maxsize=8192)
def _loan_key(latin: str) -> str:
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


_REPEATED_LETTER = re.compile(r"([^\d])\1+")


@lru_cache(maxsize=8192)
def _metaphone(letters: str) -> str:
    """Metaphone of the letters, with digits kept in place (jellyfish drops them)."""
    return "".join(
        run if run[0].isdigit() else jellyfish.metaphone(run) for run in _RUNS.findall(letters)
    )


@lru_cache(maxsize=8192)
def _as_hangul(latin: str) -> str:
    """Respell letters with only the distinctions Hangul keeps: no f, v, z, soft or hard c.

    Romanised Hangul never brings back "f" or "c" ("허깅페이스" reads "huggingpeis"), so
    Hangul spans are compared on this spelling of both sides: "hugingpeis" against
    "hugingpas" (the form, its silent e dropped) rather than "huggingface".
    """
    s = _SOFT_C.sub("s", latin.replace("ph", "p").replace("ck", "k").replace("ch", "\0"))
    return _collapse(s.translate(_HANGUL_LESS))


_RHYME_OF = {letter: group for group in RHYMES for letter in group}
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
_RUNS = re.compile(r"\d+|[^\d]+")


# --- spoken forms ----------------------------------------------------------------------


def _cardinal(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + _cardinal(n % 100)
        return _ONES[n // 100] + " hundred" + rest
    rest = "" if n % 1000 == 0 else " " + _cardinal(n % 1000)
    return _cardinal(n // 1000) + " thousand" + rest


def _sino_korean(n: int) -> str:
    out = []
    for value, unit in ((1000, "천"), (100, "백"), (10, "십")):
        digit, n = divmod(n, value)
        if digit:
            out.append(("" if digit == 1 else _SINO_DIGITS[digit]) + unit)
    if n or not out:
        out.append(_SINO_DIGITS[n])
    return "".join(out)


def number_words(digits: str) -> tuple[list[str], list[str]]:
    """Return the ways English and Korean speakers say a run of digits (English first)."""
    english = [" ".join(_ONES[int(d)] for d in digits)]
    korean = ["".join(_SINO_DIGITS[int(d)] for d in digits)]
    if len(digits) <= 4 and (digits == "0" or not digits.startswith("0")):
        n = int(digits)
        cardinal = _cardinal(n)
        english.insert(0, cardinal)
        korean.insert(0, _sino_korean(n))
        if cardinal.startswith(("one hundred", "one thousand")):
            # "a hundred", but not a bare "hundred": after a letter, "A" + "hundred" would
            # make every "a hundred apples" an A100.
            english.append("a" + cardinal[3:])
        if len(digits) in (3, 4) and n % 100 and n % 1000 >= 100:
            head, tail = divmod(n, 100)
            tail_words = _cardinal(tail) if tail >= 10 else "oh " + _ONES[tail]
            english.append(f"{_cardinal(head)} {tail_words}")  # "four twenty nine"
    return _dedupe(english), _dedupe(korean)


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class _Alternative:
    text: str  # as said, romanised where Korean
    latin: bool
    letter_names: bool  # said letter by letter with English letter names
    words: int  # the most words it can be written in ("RPC" as "r p c": three)


def _part_alternatives(part: str) -> list[_Alternative]:
    if part.isdigit():
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
    parts = _CAMEL_PARTS.findall(canonical)
    options = [_part_alternatives(part) for part in parts]
    for edge in {0, len(options) - 1} if options else ():
        # A symbol is silent only between words ("node js"); ".NET" is not "net".
        said = [alt for alt in options[edge] if alt.text]
        options[edge] = said or options[edge]
    forms: dict[str, SpokenForm] = {}
    for combo in product(*options):
        letters = _NOT_ALNUM.sub("", "".join(alt.text for alt in combo))
        if not letters or letters in forms:
            continue
        # Hangul does not write an English silent e (페이스 is "face"), so a form compared
        # with Hangul drops it; romanised Korean keeps every e, each one is said.
        heard = "".join(_SILENT_E.sub("", alt.text) if alt.latin else alt.text for alt in combo)
        forms[letters] = SpokenForm(
            letters,
            latin=all(alt.latin for alt in combo),
            letter_names=any(alt.letter_names for alt in combo),
            words=sum(alt.words for alt in combo),
            as_hangul=_as_hangul(_NOT_ALNUM.sub("", heard)),
        )
        if len(forms) >= MAX_FORMS:
            break
    return list(forms.values())


_SILENT_E = re.compile(r"(?<=[a-z][bcdfgklmnprstvz])e\b")


# --- matching ----------------------------------------------------------------------------


def _similarity(a: str, b: str) -> float:
    return Indel.normalized_similarity(a, b) if a and b else 0.0


def _tokens(text: str) -> list[_Token]:
    """Split text into words of one script: "Docker파일" is "Docker" and "파일"."""
    tokens = []
    for match in _WORD.finditer(text):
        word, offset = match.group(), match.start()
        cut = 0
        for i in range(1, len(word) + 1):
            if i == len(word) or _is_hangul(word[i]) != _is_hangul(word[cut]):
                tokens.append(_Token(offset + cut, offset + i, word[cut:i], _is_hangul(word[cut])))
                cut = i
    return tokens


def _is_acronym(word: str) -> bool:
    return len(word) > 1 and word.isalpha() and word.isupper()


def _is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3"


def _is_particles(tail: str, depth: int = 2) -> bool:
    if not tail:
        return True
    if depth == 0:
        return False
    return any(
        tail[:n] in PARTICLES and _is_particles(tail[n:], depth - 1)
        for n in range(1, min(_MAX_PARTICLE_CHARS, len(tail)) + 1)
    )


class SoundAlikeMatcher:
    """Find sound-alikes of a fixed set of terms; build once, match many texts."""

    def __init__(self, terms: Sequence[TermSpec], *, threshold: float = DEFAULT_THRESHOLD):
        self.terms = [t for t in terms if t.canonical.strip()]
        self.threshold = threshold
        self._short = [len(_NOT_ALNUM.sub("", t.canonical)) <= SHORT_TERM_CHARS for t in self.terms]
        self._canonical = [
            (i, re.compile(_exact_regex(t.canonical.strip()))) for i, t in enumerate(self.terms)
        ]
        # Terms spelled as letters ("ECR", "gRPC"; not "Go"): their letters in capitals.
        self._acronyms = [
            (i, t.canonical.upper())
            for i, t in enumerate(self.terms)
            if t.canonical.isascii()
            and t.canonical.isalpha()
            and sum(c.isupper() for c in t.canonical) >= max(2, len(t.canonical) - 1)
        ]
        forms: list[tuple[_Form, int]] = []
        for index, term in enumerate(self.terms):
            said = spoken_forms(term.canonical)
            for variant in term.variants:
                said += [f for f in spoken_forms(variant) if not f.letter_names]
            for f in said:
                if self._short[index] and f.letter_names:
                    continue  # "see eye" is a phrase, not CI
                form = _Form(
                    index, f.letters, _metaphone(f.letters), _loan_key(f.letters), f.as_hangul,
                    f.latin,
                )  # fmt: skip
                forms.append((form, f.words + EXTRA_WORDS))
        # _buckets[words][(any Hangul, first class of the loan key)]: the forms a span of
        # that many words may match; a Latin span only meets Latin forms. Bucketing on the
        # first sound is what keeps a long text fast.
        self._buckets: list[dict[tuple[bool, str], list[_Form]]] = [
            {} for _ in range(max((w for _, w in forms), default=0) + 1)
        ]
        for form, most_words in forms:
            for words in range(1, most_words + 1):
                for hangul in (True, False) if form.latin else (True,):
                    self._buckets[words].setdefault((hangul, form.loan_key[:1]), []).append(form)

    def matches(self, text: str) -> list[SoundAlike]:
        """Return the non-overlapping sound-alikes in ``text``, in order."""
        candidates = self._unblocked(text)
        chosen: list[_Candidate] = []
        for c in candidates:
            if not any(c.start < o.end and o.start < c.end for o in chosen):
                chosen.append(c)
        return [
            SoundAlike(c.start, c.end, text[c.start : c.end], self.terms[c.term].canonical, c.score)
            for c in sorted(chosen, key=lambda c: c.start)
        ]

    def candidates(self, text: str) -> list[SoundAlike]:
        """Every span of ``text`` that sounds like a term, overlapping ones too (each term's
        best score per span), most alike first: for a judge other than the score."""
        return [
            SoundAlike(c.start, c.end, text[c.start : c.end], self.terms[c.term].canonical, c.score)
            for c in self._unblocked(text)
        ]

    def _unblocked(self, text: str) -> list[_Candidate]:
        if not self.terms:
            return []
        kept = self._kept_spellings(text)
        found = self._candidates(text) + self._rhyming_acronyms(text)
        candidates = [c for c in found if not _blocked(c, kept)]
        candidates.sort(key=lambda c: (-c.score, -c.words, c.start))
        return candidates

    def apply(self, text: str) -> str:
        """Return ``text`` with every sound-alike replaced by its term."""
        out, cursor = [], 0
        for match in self.matches(text):
            out += [text[cursor : match.start], match.term]
            cursor = match.end
        return "".join(out) + text[cursor:]

    def _rhyming_acronyms(self, text: str) -> list[_Candidate]:
        """Acronyms Whisper wrote (capitals only, 2–5 letters) that differ from a glossary
        acronym of the same length only in letters that rhyme with its letters, at most
        half of them and at least one ("DCR" is ECR, "CRBC" gRPC; "ACR" is not ECR)."""
        found = []
        for token in _tokens(text):
            word = token.text
            if not (2 <= len(word) <= 5 and word.isascii() and _is_acronym(word)):
                continue
            for index, letters in self._acronyms:
                if len(letters) != len(word) or letters == word:
                    continue
                pairs = [(a, b) for a, b in zip(word, letters, strict=True) if a != b]
                if len(pairs) <= max(1, len(word) // 2) and all(
                    _RHYME_OF.get(a) == _RHYME_OF.get(b) for a, b in pairs
                ):
                    found.append(
                        _Candidate(token.start, token.end, index, RHYMING_ACRONYM_SCORE, 1)
                    )
        return found

    def _kept_spellings(self, text: str) -> list[_Candidate]:
        return [
            _Candidate(m.start(), m.end(), index, 1.0, len(_tokens(m.group())))
            for index, pattern in self._canonical
            for m in pattern.finditer(text)
        ]

    def _candidates(self, text: str) -> list[_Candidate]:
        tokens = _tokens(text)
        # Per word, once: its letters; respelled as Hangul keeps them (several spellings
        # for a Hangul word); and for Hangul, where a transliteration may end in it (before
        # particles), with the respellings up to there.
        latin = [[_NOT_ALNUM.sub("", t.text).lower()] for t in tokens]
        # How each word sounds: an acronym Whisper wrote is said by its letter names ("DCR"
        # is "dee see ar", not Docker); its letters still count for an exact match.
        said = [
            ["".join(LETTER_NAMES[c] for c in spelling[0])] if _is_acronym(t.text) else spelling
            for t, spelling in zip(tokens, latin, strict=True)
        ]
        respelled = [
            _respelled(romanisations(t.text) if t.hangul else latin[i])
            for i, t in enumerate(tokens)
        ]
        cuts = [
            [(cut, _respelled(romanisations(t.text[:cut]))) for cut in _hangul_cuts(t.text)]
            if t.hangul
            else []
            for t in tokens
        ]
        function = [t.text.casefold() in FUNCTION_WORDS for t in tokens]
        number = [t.text.isdigit() or t.text.casefold() in NUMBER_WORDS for t in tokens]
        found: list[_Candidate] = []
        for first, head in enumerate(tokens):
            # Spellings of the span's words before the last one, as letters and respelled.
            before_latin, before_said, before_hangul = [""], [""], [""]
            hangul, numeric = False, True
            for last in range(first, min(first + len(self._buckets) - 1, len(tokens))):
                token = tokens[last]
                if last > first and not _GAP.fullmatch(text[tokens[last - 1].end : token.start]):
                    break
                words = last - first + 1
                hangul = hangul or token.hangul
                if hangul and words > HANGUL_SPAN_WORDS:
                    break
                numeric = numeric and number[last]
                # A number is exact or another number ("one hundred" is not A100).
                exact_only = function[first] or function[last] or numeric
                if words == 1 and function[first]:
                    pass  # "the", "a", "it" alone are never a term
                elif token.hangul:
                    for cut, spellings in cuts[last]:
                        if cut < 2 and words == 1:
                            continue  # one syllable is not a transliteration
                        found += self._score_span(
                            _joined(before_hangul, spellings), head.start, token.start + cut,
                            words, hangul=True, single_word=False, exact_only=exact_only,
                        )  # fmt: skip
                elif hangul:
                    found += self._score_span(
                        _joined(before_hangul, respelled[last]), head.start, token.end, words,
                        hangul=True, single_word=False, exact_only=exact_only,
                    )  # fmt: skip
                else:
                    acronym = len(token.text) > 1 and token.text.isupper()
                    has_digit = any(c.isdigit() for c in token.text)
                    found += self._score_span(
                        _joined(before_latin, latin[last]), head.start, token.end, words,
                        hangul=False,
                        single_word=words == 1 and not (acronym or has_digit),
                        exact_only=exact_only,
                        fuzzy=_joined(before_said, said[last]),
                    )  # fmt: skip
                before_latin = _joined(before_latin, latin[last])
                before_said = _joined(before_said, said[last])
                before_hangul = _joined(before_hangul, respelled[last])
        return found

    def _score_span(
        self,
        spellings: list[str],
        start: int,
        end: int,
        words: int,
        *,
        hangul: bool,
        single_word: bool,
        exact_only: bool,
        fuzzy: list[str] | None = None,
    ) -> list[_Candidate]:
        """Score one span against the forms; ``spellings`` are respelled when ``hangul``.

        ``fuzzy``, when given, is how the span sounds: only these are scored for a near
        match, the other ``spellings`` only for an exact one.
        """
        bar = self.threshold + (WORD_MARGIN if single_word else 0.0)
        # The score is the mean of two similarities of at most 1, so a spelling similarity
        # under this cannot reach the bar; rapidfuzz returns 0 for it without the full work.
        least_spelling = min(max(2 * bar - 1, 0.0), 1.0)
        buckets = self._buckets[words]
        best: dict[int, float] = {}
        # (spelling, spellings whose first sound picks the forms, scored for a near match)
        entries: list[tuple[str, tuple[str, ...], bool]] = []
        for k, spoken in enumerate(spellings):
            sound = fuzzy[k] if fuzzy is not None and k < len(fuzzy) else spoken
            if sound != spoken:
                # Spoken letters blur at the onset ("CRPC" for gRPC), so the letters' first
                # sound picks forms as well as the letter names'.
                entries.append((spoken, (spoken,), False))
            entries.append((sound, (spoken, sound), True))
        for spoken, lead_from, near in entries:
            if not spoken:
                continue
            phonetic_key = None  # worked out once a form gets that far
            leads = _dedupe(_loan_key(x[:LEAD_CHARS])[:1] or _loan_key(x)[:1] for x in lead_from)
            forms = [form for lead in leads for form in buckets.get((hangul, lead), ())]
            for form in forms:
                target = form.as_hangul if hangul else form.letters
                if spoken == target:
                    score = 1.0
                elif exact_only or not near or self._short[form.term]:
                    continue
                else:
                    spelling = Indel.normalized_similarity(
                        spoken, target, score_cutoff=least_spelling
                    )
                    if not spelling:
                        continue
                    if phonetic_key is None:
                        phonetic_key = _loan_key(spoken) if hangul else _metaphone(spoken)
                    if hangul and len(phonetic_key) != len(form.loan_key):
                        continue  # Korean adds vowels, never consonants: another word
                    phonetic = _similarity(
                        phonetic_key, form.loan_key if hangul else form.metaphone
                    )
                    score = (phonetic + spelling) / 2
                if score > best.get(form.term, 0.0):
                    best[form.term] = score
        return [
            _Candidate(start, end, term, round(score, 3), words)
            for term, score in best.items()
            if score >= bar or score == 1.0
        ]


def _respelled(spellings: list[str]) -> list[str]:
    return _dedupe(_as_hangul(s) for s in spellings)


def _joined(heads: list[str], tails: list[str], limit: int = 8) -> list[str]:
    return [head + tail for head in heads for tail in tails][:limit]


def _blocked(candidate: _Candidate, kept: list[_Candidate]) -> bool:
    """Whether a spelling already in the text rules the candidate out.

    It may not cut into the spelling, sit inside it or merely extend it; it may swallow it
    whole for another term ("패스트 API" is FastAPI even where API is a term).
    """
    for k in kept:
        if candidate.start < k.end and k.start < candidate.end:
            contains = candidate.start <= k.start and k.end <= candidate.end
            if (
                not contains
                or candidate.term == k.term
                or (candidate.start, candidate.end)
                == (
                    k.start,
                    k.end,
                )
            ):
                return True
    return False


def _hangul_cuts(word: str) -> list[int]:
    """Return where a transliteration can end in ``word``: the end, or before particles."""
    return [cut for cut in range(len(word), 0, -1) if _is_particles(word[cut:])]


def _exact_regex(canonical: str) -> str:
    before = r"(?<![A-Za-z0-9_])" if canonical[0].isascii() and canonical[0].isalnum() else ""
    after = r"(?![A-Za-z0-9_])" if canonical[-1].isascii() and canonical[-1].isalnum() else ""
    return before + re.escape(canonical) + after


def soundalike_matches(
    text: str, terms: Sequence[TermSpec], *, threshold: float = DEFAULT_THRESHOLD
) -> list[SoundAlike]:
    """Return the spans of ``text`` that sound like a term, with the term for each."""
    return SoundAlikeMatcher(terms, threshold=threshold).matches(text)


def apply_soundalike(
    text: str, terms: Sequence[TermSpec], *, threshold: float = DEFAULT_THRESHOLD
) -> str:
    """Replace the spans of ``text`` that sound like a term by the term's spelling."""
    return SoundAlikeMatcher(terms, threshold=threshold).apply(text)
