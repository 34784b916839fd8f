"""Find the spans of a text that sound like a glossary term, and put the term in.

Candidates, scores and guards: docs/glossary-design.md ("Sound-alike correction").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Indel

from glossary.normalize import TermSpec
from glossary.soundalike.forms import LETTER_NAMES, NOT_ALNUM, spoken_forms
from glossary.soundalike.numbers import NUMBER_WORDS, has_digit, is_digits
from glossary.soundalike.romanise import as_hangul, loan_key, metaphone, romanisations

# Tuned on tests/glossary/test_soundalike.py. The score is the mean of a phonetic and a
# spelling similarity, so 0.82 is e.g. the same sound with 64% of the letters shared, or a
# one-letter slip in a ten-letter word with the sound barely changed. The sound-alikes in
# the tests score 0.86–1.0 ("cube or nettys" 0.86, "qber needs" 0.87, "CRPC" 0.88, 랭체인
# 0.89, "pie torch" 0.90); the near misses that reach scoring at all stay at or under 0.80
# (리더스 vs Redis 0.80, 다크 vs Docker 0.75, "reddish" 0.75). 0.82 sits in that gap.
DEFAULT_THRESHOLD = 0.82
# Added to the threshold for one ordinary (not all-capitals) Latin word: a real word
# Whisper wrote was usually said (docs/glossary-design.md). "radios" vs Redis scores 0.86
# and "Jango" vs Django 0.88 (both stay); "Kubernetis" 0.95 (corrected).
WORD_MARGIN = 0.1
# A term of at most this many letters and digits only matches exactly.
SHORT_TERM_CHARS = 3
# Spans can be this many words longer than the longest spoken form of the term, and at
# most MAX_SPAN_WORDS long: a text is read in time proportional to its words times the
# longest span, and a term said in more words (a long acronym, a row of dots) is not one
# Whisper writes by sound.
EXTRA_WORDS = 2
MAX_SPAN_WORDS = 16
# The first sound of a span is read from this many letters (a Latin "tch" or a Hangul
# "ch" must not be cut in two).
LEAD_CHARS = 4
# Korean writes a transliteration as one or two words ("도커를", "에이 백"), so a span with
# Hangul in it is at most this long.
HANGUL_SPAN_WORDS = 3
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


_RHYME_OF = {letter: group for group in RHYMES for letter in group}


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


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
    """Capital Latin letters only: those have letter names (not "ÉÉ" or a fullwidth "ＡＢ")."""
    return len(word) > 1 and word.isascii() and word.isalpha() and word.isupper()


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
        self._short = [len(NOT_ALNUM.sub("", t.canonical)) <= SHORT_TERM_CHARS for t in self.terms]
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
                    index, f.letters, metaphone(f.letters), loan_key(f.letters), f.as_hangul,
                    f.latin,
                )  # fmt: skip
                forms.append((form, min(f.words + EXTRA_WORDS, MAX_SPAN_WORDS)))
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
            if not (2 <= len(word) <= 5 and _is_acronym(word)):
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
        latin = [[NOT_ALNUM.sub("", t.text).lower()] for t in tokens]
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
        number = [is_digits(t.text) or t.text.casefold() in NUMBER_WORDS for t in tokens]
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
                    digits = has_digit(token.text)
                    found += self._score_span(
                        _joined(before_latin, latin[last]), head.start, token.end, words,
                        hangul=False,
                        single_word=words == 1 and not (acronym or digits),
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
            leads = _dedupe(loan_key(x[:LEAD_CHARS])[:1] or loan_key(x)[:1] for x in lead_from)
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
                        phonetic_key = loan_key(spoken) if hangul else metaphone(spoken)
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
    return _dedupe(as_hangul(s) for s in spellings)


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
