"""LocalAgreement-2: which words of consecutive hypotheses are committed (what
whisper_streaming calls the hypothesis buffer).

Pure and audio-free: words come in session time; the streaming session
(``realtime.session``) owns the audio buffer, its trimming and the VAD, and tells the
agreement when a pause or a full buffer commits words.

- Each hypothesis opens by saying again the committed speech the buffer keeps as context:
  it is aligned with the committed words by text (word times shift between decodes) and
  only what follows is new (``past_committed``).
- The words two consecutive hypotheses agree on (their common prefix after what is
  already committed) are committed, never retracted; a word still unagreed
  ``MAX_TENTATIVE_AGE_S`` after it was spoken is committed as the latest hypothesis has it,
  so latency stays bounded (``agree``).
- A hypothesis may also only be shown (``preview``): it becomes the partial and what a
  pause commits, but the next ``agree`` still compares with the last agreed-on one. Two
  hypotheses half a second apart hear nearly the same audio and agree on the same
  mistakes; a protocol that wants interims more often than the agreement's step previews
  between agreements.
- The committed words not yet sent are closed into one ``FinalSegment`` at the end of each
  step (``close``); the rest of the latest hypothesis is the ``Partial``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

import numpy as np

from realtime.live_types import FinalSegment, Partial, TimedWord

MAX_FRAGMENTS = 2  # committed words at the buffer's edge a new hypothesis may mishear
MAX_TENTATIVE_AGE_S = 2.5  # an unagreed word this old is committed from the latest hypothesis
PROMPT_WORDS = 60  # committed words remembered for the prompt and the alignment
BOUNDARY_S = 0.01  # a word ending this close after a buffer's start lies before it


def _norm(word: TimedWord) -> str:
    return re.sub(r"[^\w]", "", word.text.lower())


def _text(words: Sequence[TimedWord]) -> str:
    return "".join(w.text for w in words).strip()


def _middle(word: TimedWord) -> float:
    return (word.start + word.end) / 2


class Agreement:
    """The committed words, the latest hypothesis past them, and the finals made of them."""

    def __init__(self) -> None:
        self.committed_end_s = 0.0
        self._open: list[TimedWord] = []  # committed, not yet in a final segment
        self._tentative: list[TimedWord] = []  # last hypothesis past the committed words
        self._base: list[TimedWord] = []  # the last one ``agree`` was given, past them
        self._said: list[TimedWord] = []  # the latest committed words
        self._next_index = 0

    @property
    def pending_start_s(self) -> float | None:
        """Where the words said since the last final start, committed or not; None when
        nothing was said since."""
        words = self._open or self._tentative
        return words[0].start if words else None

    @property
    def heard_end_s(self) -> float:
        """Where the last word heard ends, committed or not."""
        return max([self.committed_end_s, *(w.end for w in self._tentative[-1:])])

    def heard_word_ends(self) -> list[float]:
        """Where the latest words heard end, committed or not, in order."""
        return [w.end for w in [*self._said, *self._tentative]]

    @property
    def recent_text(self) -> str:
        """The latest committed words and the current hypothesis: what is being said."""
        return _text([*self._said[-20:], *self._tentative])

    def said_before(self, time_s: float) -> str:
        """The committed text that ends by ``time_s`` (a buffer's start), for the prompt."""
        return "".join(w.text for w in self._said if w.end <= time_s + BOUNDARY_S)

    def first_start_since(self, time_s: float) -> float:
        """The start of the first committed word that starts at or after ``time_s``, else of
        the last one: where a buffer keeping committed speech is cut."""
        first = next((w for w in self._said if w.start >= time_s), self._said[-1])
        return first.start

    def past_committed(self, words: list[TimedWord], *, buffer_start_s: float) -> list[TimedWord]:
        """The hypothesis ``words`` without those that repeat committed audio.

        The buffer keeps committed speech before the new audio, so a hypothesis opens by
        saying it again, not always in the same words ("information notice" for the kept
        "permission notice"). Word times move between decodes by more than a short word
        lasts, so the hypothesis is aligned with the committed words in the buffer (after
        ``buffer_start_s``) by text; what follows the last committed word matched (and the
        words heard for up to ``MAX_FRAGMENTS`` unmatched committed ones at the end) is new.
        Where nothing matches, a word whose middle lies before the committed end is old.
        """
        edge = self.committed_end_s
        kept = [_norm(w) for w in self._said if w.end > buffer_start_s + BOUNDARY_S]
        heard = [_norm(w) for w in words]
        blocks = [
            b
            for b in SequenceMatcher(None, kept, heard, autojunk=False).get_matching_blocks()
            if b.size
        ]
        if blocks and len(kept) - (blocks[-1].a + blocks[-1].size) <= MAX_FRAGMENTS:
            last = blocks[-1]
            cut = last.b + last.size
            # Committed words after the match were misheard: skip what stands for them.
            missing = len(kept) - (last.a + last.size)
            while missing and cut < len(words) and _middle(words[cut]) < edge:
                cut, missing = cut + 1, missing - 1
            return words[cut:]
        fresh = list(words)
        while fresh and _middle(fresh[0]) < edge:
            fresh = fresh[1:]
        return fresh

    def agree(self, hypothesis: list[TimedWord], *, now_s: float) -> list[TimedWord]:
        """Commit what ``hypothesis`` (new words only) agrees on with the previous one, and
        its words older than ``MAX_TENTATIVE_AGE_S`` at ``now_s``; keep the rest as the
        tentative words. Return the words committed."""
        agreed = 0
        for old, new in zip(self._base, hypothesis, strict=False):
            if _norm(old) != _norm(new):
                break
            agreed += 1
        # Words the hypotheses never agreed on are committed once they are old enough: the
        # latest hypothesis has had the most context, and latency stays bounded.
        while agreed < len(hypothesis) and now_s - hypothesis[agreed].end >= MAX_TENTATIVE_AGE_S:
            agreed += 1
        committed = hypothesis[:agreed]
        self._commit(committed)
        self._tentative = self._base = hypothesis[agreed:]
        return committed

    def preview(self, hypothesis: list[TimedWord]) -> None:
        """Show ``hypothesis`` (new words only) as the partial, commit nothing: the next
        ``agree`` compares with the hypothesis before it."""
        self._tentative = hypothesis

    def commit_starting_before(self, time_s: float) -> list[TimedWord]:
        """The speaker paused at ``time_s``: commit the tentative words that start before it
        (alignment often lets a word's end run a little past where the pause begins)."""
        return self._commit_leading([w for w in self._tentative if w.start < time_s])

    def commit_ending_by(self, time_s: float) -> list[TimedWord]:
        """Commit the tentative words that end by ``time_s`` (a full buffer is cut there)."""
        return self._commit_leading([w for w in self._tentative if w.end <= time_s])

    def flush(self) -> None:
        """The session ends or is finalized: the tentative words are committed as the latest
        hypothesis has them (a session that goes on hears them again as context)."""
        self._commit(self._tentative)
        self._tentative = self._base = []

    def close(self) -> list[FinalSegment]:
        """The committed words not yet sent as one final; none when they say nothing."""
        words, self._open = self._open, []
        if not words or not _text(words):
            return []
        segment = FinalSegment(
            index=self._next_index,
            start=round(words[0].start, 3),
            end=round(words[-1].end, 3),
            text=_text(words),
            words=tuple(words),
            confidence=round(float(np.mean([w.probability for w in words])), 4),
        )
        self._next_index += 1
        return [segment]

    def partial(self) -> Partial | None:
        """The open segment so far: committed words not yet sent and the tentative ones."""
        words = self._open + self._tentative
        if not words or not _text(words):
            return None
        return Partial(
            text=_text(words),
            start=round(words[0].start, 3),
            end=round(words[-1].end, 3),
            words=tuple(words),
        )

    def _commit_leading(self, words: list[TimedWord]) -> list[TimedWord]:
        if words:
            self._commit(words)
            self._tentative = self._base = self._tentative[len(words) :]
        return words

    def _commit(self, words: Sequence[TimedWord]) -> None:
        if not words:
            return
        self._open += words
        self.committed_end_s = max(self.committed_end_s, words[-1].end)
        self._said = [*self._said, *words][-PROMPT_WORDS:]
