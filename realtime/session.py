"""The streaming core: LocalAgreement-2 stabilisation over a rolling audio buffer.

Pure: no I/O, no Channels, no model. A ``StreamingSession`` is given a ``transcribe``
function (audio, prompt → timed words) and optionally a ``speech_regions`` function (VAD);
``insert_audio()`` appends samples, ``process()`` re-decodes the buffer and returns what
became final and the current partial, ``finish()`` flushes everything.

How text settles (after whisper_streaming's OnlineASRProcessor):
- each step decodes the whole buffer; the words that two consecutive hypotheses agree on
  (their common prefix after what is already committed) are committed — never retracted;
  a word still unagreed ``MAX_TENTATIVE_AGE_S`` after it was spoken is committed as the
  latest hypothesis has it, so latency stays bounded;
- committed words are grouped into the open segment, which becomes a ``final`` at a VAD
  silence (where the not-yet-agreed words before the silence are committed too: the
  speaker stopped), at sentence punctuation, when it grows past ``MAX_SEGMENT_S``, or once
  its first word is ``FINAL_AFTER_S`` older than the newest audio;
- after each commit the buffer is trimmed to the last committed word, keeping
  ``LEFT_CONTEXT_S`` of audio before it, and the committed text is fed back as the prompt;
- the buffer never exceeds ``MAX_BUFFER_S``: past it the oldest hypothesised words are
  committed and cut, so memory is flat however long the session runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16000
MIN_CHUNK_S = 1.0  # decode again once this much new audio has arrived
MAX_BUFFER_S = 24.0  # under Whisper's 30 s window
LEFT_CONTEXT_S = 0.5  # audio kept before the last committed word when trimming
FINALIZE_SILENCE_S = 0.6  # a pause this long closes the open segment
MAX_SEGMENT_S = 12.0
FINAL_AFTER_S = 2.0  # committed words this much older than the newest audio become final
MAX_TENTATIVE_AGE_S = 2.5  # an unagreed word this old is committed from the latest hypothesis
PROMPT_CHARS = 200
SENTENCE_END = re.compile(r"[.!?。？！]$")


@dataclass(frozen=True)
class TimedWord:
    start: float  # seconds from the start of the session
    end: float
    text: str  # with its leading space, as Whisper emits it
    probability: float = 1.0


@dataclass(frozen=True)
class FinalSegment:
    index: int
    start: float
    end: float
    text: str
    words: tuple[TimedWord, ...]
    confidence: float


@dataclass(frozen=True)
class Partial:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class StepResult:
    finals: tuple[FinalSegment, ...] = ()
    partial: Partial | None = None
    decoded: bool = False  # whether this step ran the model


# (audio relative to the buffer, prompt) -> words with times relative to the buffer
Transcriber = Callable[[np.ndarray, str], Sequence[TimedWord]]
# audio -> speech regions as (start_s, end_s) relative to the audio
SpeechRegions = Callable[[np.ndarray], Sequence[tuple[float, float]]]


def _norm(word: TimedWord) -> str:
    return re.sub(r"[^\w]", "", word.text.lower())


def _text(words: Sequence[TimedWord]) -> str:
    return "".join(w.text for w in words).strip()


class StreamingSession:
    def __init__(
        self,
        transcribe: Transcriber,
        speech_regions: SpeechRegions | None = None,
        *,
        initial_prompt: str = "",
        min_chunk_s: float = MIN_CHUNK_S,
        max_buffer_s: float = MAX_BUFFER_S,
    ) -> None:
        self._transcribe = transcribe
        self._speech_regions = speech_regions
        self._min_chunk = int(min_chunk_s * SAMPLE_RATE_HZ)
        self._max_buffer = int(max_buffer_s * SAMPLE_RATE_HZ)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start_s = 0.0  # session time of self._buffer[0]
        self._new_samples = 0  # inserted since the last decode
        self._open: list[TimedWord] = []  # committed, not yet in a final segment
        self._tentative: list[TimedWord] = []  # last hypothesis past the committed words
        self._committed_end_s = 0.0
        self._prompt = initial_prompt
        self._next_index = 0

    # --- inputs -------------------------------------------------------------------------

    def insert_audio(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        self._new_samples += samples.shape[0]

    @property
    def buffer_s(self) -> float:
        return self._buffer.shape[0] / SAMPLE_RATE_HZ

    @property
    def audio_end_s(self) -> float:
        return self._buffer_start_s + self.buffer_s

    @property
    def ready(self) -> bool:
        """Whether enough new audio arrived for another decode to be worth it."""
        return self._new_samples >= self._min_chunk

    # --- steps --------------------------------------------------------------------------

    def process(self) -> StepResult:
        """Decode the buffer if enough new audio arrived; commit, finalise, trim."""
        if not self.ready:
            return StepResult(partial=self._partial())
        finals = self._step()
        return StepResult(finals=tuple(finals), partial=self._partial(), decoded=True)

    def finish(self) -> StepResult:
        """Decode what is left and finalise everything: the session's last step."""
        finals: list[FinalSegment] = []
        if self._new_samples > 0 and self._buffer.shape[0] > 0:
            finals += self._step()
        self._open += self._tentative
        self._tentative = []
        finals += self._close_segment(self._open)
        self._trim_to(self.audio_end_s)
        return StepResult(finals=tuple(finals), partial=None, decoded=True)

    # --- internals ----------------------------------------------------------------------

    def _step(self) -> list[FinalSegment]:
        self._new_samples = 0
        finals: list[FinalSegment] = []
        if self._buffer.shape[0] > self._max_buffer:
            # Audio arrived faster than steps ran: cut before decoding, so a decode never
            # sees more than MAX_BUFFER_S (and Whisper's 30 s window).
            finals += self._force_cut()
        words = [
            TimedWord(
                w.start + self._buffer_start_s, w.end + self._buffer_start_s, w.text, w.probability
            )
            for w in self._transcribe(self._buffer, self._prompt[-PROMPT_CHARS:])
        ]
        hypothesis = self._after_committed(words)
        agreed = 0
        for old, new in zip(self._tentative, hypothesis, strict=False):
            if _norm(old) != _norm(new):
                break
            agreed += 1
        # Words the hypotheses never agreed on are committed once they are old enough: the
        # latest hypothesis has had the most context, and latency stays bounded.
        while (
            agreed < len(hypothesis)
            and self.audio_end_s - hypothesis[agreed].end >= MAX_TENTATIVE_AGE_S
        ):
            agreed += 1
        if agreed:
            self._commit(hypothesis[:agreed])
        self._tentative = hypothesis[agreed:]

        silence_at = self._silence_after_speech()
        if silence_at is not None:
            # The speaker paused: what was said before the pause is final.
            before = [w for w in self._tentative if w.end <= silence_at]
            self._commit(before)
            self._tentative = self._tentative[len(before) :]
            finals += self._close_segment(self._open)
            self._trim_to(max(silence_at, self._committed_end_s))
        elif self._open and (
            SENTENCE_END.search(self._open[-1].text.strip())
            or self._open[-1].end - self._open[0].start >= MAX_SEGMENT_S
            # Settled words are not held back waiting for a pause that may not come.
            or self.audio_end_s - self._open[0].end >= FINAL_AFTER_S
        ):
            finals += self._close_segment(self._open)
        if self._buffer.shape[0] > self._max_buffer:
            finals += self._force_cut()
        return finals

    def _after_committed(self, words: list[TimedWord]) -> list[TimedWord]:
        """Drop words of the left context that are already committed."""
        fresh = [w for w in words if w.end > self._committed_end_s + 0.05]
        committed_tail = self._open[-5:] if self._open else []
        if fresh and committed_tail and abs(fresh[0].start - self._committed_end_s) < 1.0:
            for n in range(min(len(committed_tail), len(fresh), 5), 0, -1):
                if [_norm(w) for w in committed_tail[-n:]] == [_norm(w) for w in fresh[:n]]:
                    return fresh[n:]
        return fresh

    def _commit(self, words: Sequence[TimedWord]) -> None:
        if not words:
            return
        self._open += words
        self._committed_end_s = max(self._committed_end_s, words[-1].end)
        self._prompt = (self._prompt + "".join(w.text for w in words))[-PROMPT_CHARS:]
        self._trim_to(self._committed_end_s - LEFT_CONTEXT_S)

    def _close_segment(self, words: list[TimedWord]) -> list[FinalSegment]:
        if not words or not _text(words):
            self._open = []
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
        self._open = []
        return [segment]

    def _silence_after_speech(self) -> float | None:
        """Session time where a long enough pause starts after the open speech, if any."""
        if self._speech_regions is None or not (self._open or self._tentative):
            return None
        regions = list(self._speech_regions(self._buffer))
        first_word = (self._open or self._tentative)[0].start - self._buffer_start_s
        if not regions:
            # Only silence left after trimming: the speech before it has ended.
            return self._buffer_start_s if self.buffer_s >= FINALIZE_SILENCE_S else None
        gaps = [(0.0, regions[0][0])]  # a pause right at the start of the trimmed buffer
        gaps += [(a[1], b[0]) for a, b in zip(regions, regions[1:], strict=False)]
        gaps.append((regions[-1][1], self.buffer_s))
        for start, end in gaps:
            if end - start >= FINALIZE_SILENCE_S and start > first_word:
                return self._buffer_start_s + start
        return None

    def _force_cut(self) -> list[FinalSegment]:
        """The buffer is full without a pause: commit the older half and cut it off."""
        cut = self._buffer_start_s + self._max_buffer / SAMPLE_RATE_HZ / 2
        older = [w for w in self._tentative if w.end <= cut]
        self._commit(older)
        self._tentative = self._tentative[len(older) :]
        finals = self._close_segment(self._open)
        self._trim_to(max(cut, self._committed_end_s - LEFT_CONTEXT_S))
        return finals

    def _trim_to(self, session_s: float) -> None:
        drop = int(round((session_s - self._buffer_start_s) * SAMPLE_RATE_HZ))
        drop = max(0, min(drop, self._buffer.shape[0]))
        if drop:
            self._buffer = self._buffer[drop:].copy()
            self._buffer_start_s += drop / SAMPLE_RATE_HZ

    def _partial(self) -> Partial | None:
        words = self._open + self._tentative
        if not words or not _text(words):
            return None
        return Partial(
            text=_text(words), start=round(words[0].start, 3), end=round(words[-1].end, 3)
        )
