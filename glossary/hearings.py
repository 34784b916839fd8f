"""Reconcile a window's biased decode with the two quick hearings that chose its hotwords.

``Reconciler.edits`` puts back a term the biased decode lost where two hearings agree it
was said (the survey wrote it; or the first pass was offered it and the decode heard the
same place otherwise). ``Reconciler.proposals`` adds looser edits for the audio to judge,
and ``listened`` takes those the audio favours (a window the engine checked). ``decoded``
is the text as the glossary stage left it. Latin text. The rules and why:
docs/glossary-design.md ("Reconciling the decode with its hearings").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import LCSseq

from glossary.metrics import term_occurrences
from glossary.normalize import TermSpec, apply_glossary
from glossary.offering import WORD, Offer, TermOffer
from transcription.engine.hearing import CheckedAlternative

# A term the survey wrote is offered where the first pass heard something at least this
# close to it (TermOffer.closeness): shown the whole glossary, the survey also writes
# terms nobody said. Measured on the three term sets' hearings with a 99-term glossary:
# the survey's terms that were said scored 0.47–0.93 against the first pass ("the disk"
# 0.67 for Redis), those that were not 0.51–0.60.
SURVEY_CLOSENESS = 0.62
# A span of the decode this close to a term the survey wrote is what the term replaces;
# looser than offering, since the survey already says the term is there.
NEAR_THRESHOLD = 0.5
# A span of the decode this close to a term offered from the same place of the first pass
# (which scored at least OFFER_THRESHOLD there) puts the term back: two hearings at one
# place. Measured on the tuning sentences: "CDF" for PDFs (first pass "the DFS") scores
# 0.66; no span that says no term passed the rule's other conditions at 0.6 on either set.
MOVED_THRESHOLD = 0.6

# An alternative spelling the audio was asked about (``transcription.engine.listening``)
# is taken when the model, offered the term, finds the text with it likelier than the text
# as written by more than this (nats): the audio favours it at all. Not tuned; on the
# four term sets' first decodes (130 terms), the sound-alikes of terms that were said
# mostly gained 0 to 20, those of terms that were not mostly lost 2 to 45.
AUDIO_GAIN = 0.0

# A hearing's words proposed in place of the decode's span at most this many words on
# either side: a place, not a rewrite of the window.
PROPOSAL_WORDS = 6
# The term alone is proposed in place of runs of at most this many of the decode's words.
NEAR_SPAN_WORDS = 3

# The offering search's words, and Hangul words, which it does not read but which an
# alignment must not step over.
_WORD = re.compile(WORD.pattern + r"|[\uac00-\ud7a3]+")


@dataclass(frozen=True)
class Edit:
    start: int  # character span of the decode that is replaced
    end: int
    text: str  # what replaces it
    term: str  # the term put back
    reason: str  # "survey" or "first_pass"


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    key: str  # lower-cased, for the alignment


def _words(text: str) -> list[_Word]:
    return [_Word(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(text)]


def _opcodes(a: list[_Word], b: list[_Word]) -> Sequence[tuple[str, int, int, int, int]]:
    matcher = difflib.SequenceMatcher(a=[w.key for w in a], b=[w.key for w in b], autojunk=False)
    return matcher.get_opcodes()


def _letters(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _spliced(
    decoded: str,
    ours: Sequence[_Word],
    survey: str,
    theirs: Sequence[_Word],
    missing: Sequence[str],
) -> Edit:
    """Replace the fewest of the decode's words ``ours`` with the survey's ``theirs``.

    The survey's words before its first missing term and after its last one are matched
    to the decode's words on each side (longest common letters); what lies between is
    replaced by the survey's words between, so "in float 69 8100" against "inflate16
    A100" loses only "8100". A side where the decode keeps no word takes the survey's
    words there too ("Kubernetes" against "and Redis" becomes "and Redis").
    """
    low, high = theirs[0].start, theirs[-1].end
    found = [
        (m.start(), m.end())
        for term in missing
        for m in re.finditer(re.escape(term), survey[low:high])
    ]
    term_start, term_end = low + min(a for a, _ in found), low + max(b for _, b in found)
    before, after = _letters(survey[low:term_start]), _letters(survey[term_end:high])
    best: tuple[int, int, int, int] | None = None  # (score, -replaced words, first, end)
    for first in range(len(ours)):
        for end in range(first + 1, len(ours) + 1):
            kept_before = _letters(decoded[ours[0].start : ours[first].start]) if first else ""
            kept_after = (
                _letters(decoded[ours[end].start : ours[-1].end]) if end < len(ours) else ""
            )
            score = LCSseq.similarity(before, kept_before) + LCSseq.similarity(after, kept_after)
            key = (score, first - end, first, end)
            if best is None or key > best:
                best = key
    assert best is not None
    _, _, first, end = best
    text_start = low if first == 0 else term_start
    text_end = high if end == len(ours) else term_end
    return Edit(
        ours[first].start,
        ours[end - 1].end,
        survey[text_start:text_end],
        ", ".join(missing),
        "survey",
    )


def _overlaps(start: int, end: int, edits: Sequence[Edit]) -> bool:
    return any(start < e.end and e.start < end for e in edits)


class Reconciler:
    """Put back terms the biased decode lost; build once per glossary."""

    def __init__(self, terms: Sequence[TermSpec]) -> None:
        self.terms = [t for t in terms if t.canonical.strip()]
        self.by_canonical = {t.canonical: t for t in self.terms}
        self.offer = TermOffer(self.terms)

    def edits(self, decoded: str, *, first_pass: str, survey: str | None) -> list[Edit]:
        """The replacements that reconcile ``decoded`` with its hearings, in text order."""
        if not self.terms or not decoded.strip():
            return []
        offered = self.offer.offers(first_pass)  # what the first pass heard
        close = self.offer.closeness(first_pass)
        edits: list[Edit] = []
        if survey:
            edits += self._from_survey(
                decoded,
                apply_glossary(survey, self.terms),
                apply_glossary(first_pass, self.terms),
                offered,
                close,
            )
        edits += self._from_first_pass(decoded, first_pass, offered, edits)
        return sorted(edits, key=lambda e: e.start)

    def proposals(self, decoded: str, *, first_pass: str, survey: str | None) -> list[Edit]:
        """Edits for the audio to judge rather than rules to make (``listened``): the rules'
        own (``edits``); every place where a hearing wrote a term the decode lacks and
        other words than the decode's, the hearing's words in place of the decode's
        ("survey", "first_pass"), and the term alone in place of each run of at most
        NEAR_SPAN_WORDS of the decode's words there, one word either side included
        ("near"); and every place where the decode wrote a term neither hearing did, the
        first pass's words in its place ("unheard"). None takes out a term the decode
        wrote, but the "unheard" one."""
        if not self.terms or not decoded.strip():
            return []
        proposed = self.edits(decoded, first_pass=first_pass, survey=survey)
        ours = _words(decoded)
        heard = {
            reason: apply_glossary(text, self.terms)
            for reason, text in (("survey", survey), ("first_pass", first_pass))
            if text
        }
        for reason, text in heard.items():
            theirs = _words(text)
            for tag, i1, i2, j1, j2 in _opcodes(ours, theirs):
                if tag != "replace" or max(i2 - i1, j2 - j1) > PROPOSAL_WORDS:
                    continue
                start, end = ours[i1].start, ours[i2 - 1].end
                region = text[theirs[j1].start : theirs[j2 - 1].end]
                written = self.terms_in(decoded[start:end])
                added = [t for t in self.terms_in(region) if not term_occurrences(decoded, t)]
                # A term is put in, never one the decode wrote there taken out for it.
                if added and all(term_occurrences(region, t) for t in written):
                    proposed.append(Edit(start, end, region, added[0], reason))
                # Or the term alone, in place of a few of the decode's words at that place.
                for term in added:
                    for a in range(max(0, i1 - 1), min(len(ours), i2 + 1)):
                        for b in range(a, min(a + NEAR_SPAN_WORDS, len(ours), i2 + 1)):
                            low, high = ours[a].start, ours[b].end
                            if not self.terms_in(decoded[low:high]):
                                proposed.append(Edit(low, high, term, term, "near"))
                unheard = [
                    t for t in written if not any(term_occurrences(h, t) for h in heard.values())
                ]
                # One term taken out at a time, and only it.
                if reason == "first_pass" and len(written) == len(unheard) == 1:
                    proposed.append(Edit(start, end, region, unheard[0], "unheard"))
        return proposed

    def apply(self, decoded: str, *, first_pass: str, survey: str | None) -> str:
        out = decoded
        for edit in reversed(self.edits(decoded, first_pass=first_pass, survey=survey)):
            out = out[: edit.start] + edit.text + out[edit.end :]
        return out

    def terms_in(self, text: str) -> list[str]:
        return [t for t in self.by_canonical if term_occurrences(text, t)]

    def _from_survey(
        self,
        decoded: str,
        survey: str,
        first_pass: str,
        offered: Sequence[Offer],
        close: dict[str, float],
    ) -> list[Edit]:
        offered_terms = {o.term for o in offered}

        def supported(term: str) -> int:
            return max(
                term_occurrences(survey, term),
                term_occurrences(first_pass, term),
                int(term in offered_terms),
            )

        ours, theirs = _words(decoded), _words(survey)
        edits: list[Edit] = []
        for tag, i1, i2, j1, j2 in _opcodes(ours, theirs):
            if tag != "replace":
                continue
            start, end = ours[i1].start, ours[i2 - 1].end
            region, surveyed = decoded[start:end], survey[theirs[j1].start : theirs[j2 - 1].end]
            missing = [
                t
                for t in self.terms_in(surveyed)
                if term_occurrences(decoded, t) < term_occurrences(survey, t)
                and close.get(t, 0.0) >= SURVEY_CLOSENESS
            ]
            if not missing:
                continue
            if len(missing) == 1 and not self.terms_in(region):
                near = TermOffer([self.by_canonical[missing[0]]], threshold=NEAR_THRESHOLD).offers(
                    region
                )
                if near:
                    edits.append(
                        Edit(
                            start + near[0].start,
                            start + near[0].end,
                            missing[0],
                            missing[0],
                            "survey",
                        )
                    )
                    continue
            edit = _spliced(decoded, ours[i1:i2], survey, theirs[j1:j2], missing)
            # The decode's terms in what would be replaced must all be ones it wrote more
            # often than any hearing supports.
            written = self.terms_in(decoded[edit.start : edit.end])
            if any(term_occurrences(decoded, t) <= supported(t) for t in written):
                continue
            edits.append(edit)
        return edits

    def _from_first_pass(
        self, decoded: str, first_pass: str, offered: Sequence[Offer], taken: Sequence[Edit]
    ) -> list[Edit]:
        missing = [o for o in offered if not term_occurrences(decoded, o.term)]
        if not missing:
            return []
        ours, theirs = _words(decoded), _words(first_pass)
        # Per word of the decode: the first-pass words it stands for, and whether it
        # differs from them.
        stands_for: dict[int, range] = {}
        differs: set[int] = set()
        for tag, i1, i2, j1, j2 in _opcodes(ours, theirs):
            for i in range(i1, i2):
                if tag == "equal":
                    stands_for[i] = range(j1 + i - i1, j1 + i - i1 + 1)
                else:
                    stands_for[i] = range(j1, max(j2, j1 + 1))
                    differs.add(i)
        edits: list[Edit] = []
        search = TermOffer([self.by_canonical[o.term] for o in missing], threshold=MOVED_THRESHOLD)
        heard_at = {
            o.term: {j for j, w in enumerate(theirs) if o.start < w.end and w.start < o.end}
            for o in missing
        }
        for found in search.offers(decoded):
            spanned = [i for i, w in enumerate(ours) if found.start < w.end and w.start < found.end]
            if not differs.intersection(spanned):
                continue  # the decode wrote what the first pass wrote: it was not moved
            mapped = set().union(*(stands_for[i] for i in spanned))
            if not mapped & heard_at[found.term]:
                continue  # another place than the one the term was offered from
            if _overlaps(found.start, found.end, [*taken, *edits]):
                continue
            edits.append(Edit(found.start, found.end, found.term, found.term, "first_pass"))
        return edits


def listened(checked: Sequence[CheckedAlternative]) -> list[Edit]:
    """The alternatives the audio favours (``gain`` over AUDIO_GAIN), best first, none
    overlapping another: what the hearings stage makes of a checked segment.

    A span with the term's very letters ("alert manager", "web socket") is taken first,
    whatever its gain: the audio cannot tell a spelling from its spaces, the letters can.
    """

    def spelled(alternative: CheckedAlternative) -> bool:
        return _letters(alternative.heard) == _letters(alternative.text)

    taken: list[Edit] = []
    for alternative in sorted(checked, key=lambda a: (not spelled(a), -a.gain)):
        if alternative.gain <= AUDIO_GAIN and not spelled(alternative):
            break
        if _overlaps(alternative.start, alternative.end, taken):
            continue
        taken.append(
            Edit(
                alternative.start,
                alternative.end,
                alternative.text,
                alternative.term,
                alternative.reason,
            )
        )
    return sorted(taken, key=lambda e: e.start)
