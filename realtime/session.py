"""The streaming core: LocalAgreement-2 stabilisation over a rolling audio buffer.

Pure: no I/O, no Channels, no model. A ``StreamingSession`` is given a ``transcribe``
function (audio, prompt → timed words) and optionally a ``speech_regions`` function (VAD);
``insert_audio()`` appends samples, ``process()`` re-decodes the buffer and returns what
became final and the current partial, ``finish()`` flushes everything. ``process()`` is
``decode_request()`` (what to decode, or None) then ``apply()`` (the words heard): a
worker serving many sessions collects every ready session's request, decodes them as one
batch and applies each result to its session.

How text settles (after whisper_streaming's OnlineASRProcessor):
- only words that overlap speech found by VAD count (Whisper writes "Thank you." into
  silence and trailing noise); a step with no speech since the last commit is not
  decoded at all;
- each step decodes the whole buffer; the words that two consecutive hypotheses agree on
  (their common prefix after what is already committed) are committed — never retracted;
  a word still unagreed ``MAX_TENTATIVE_AGE_S`` after it was spoken is committed as the
  latest hypothesis has it, so latency stays bounded;
- the words committed by a step are sent as one ``final`` at the end of that step: a
  caption does not wait for the end of a sentence that may not come (a final's lag is the
  time to agreement, about two steps). At a VAD silence the not-yet-agreed words before
  it are committed too: the speaker stopped;
- after each commit the buffer is trimmed to keep ``KEEP_CONTEXT_S`` of committed speech,
  cut at a word's start, as context for the next decodes; the committed text before the
  buffer is fed back as the prompt (text inside it is left out, or Whisper skips the audio
  that repeats it). A new hypothesis opens by saying the kept speech again: it is aligned
  with the committed words by text (word times shift between decodes) and only what
  follows is new. When VAD hears speech after the committed end but the model writes
  nothing new (Whisper stopping at the context after a sentence and a pause), the context
  is dropped for the next decode;
- the buffer never exceeds ``MAX_BUFFER_S``: past it the oldest hypothesised words are
  committed and cut, so memory is flat however long the session runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

SAMPLE_RATE_HZ = 16000
MIN_CHUNK_S = 1.0  # decode again once this much new audio has arrived
MAX_FRAGMENTS = 2  # committed words at the buffer's edge a new hypothesis may mishear
SPEECH_PAD_S = 0.2  # a word counts as heard when it comes this close to VAD speech
MAX_BUFFER_S = 24.0  # under Whisper's 30 s window
LEFT_CONTEXT_S = 0.5  # audio kept before new speech when a silent buffer is trimmed
KEEP_CONTEXT_S = 5.0  # committed speech kept in the buffer, whole words, as context
MAX_WORD_S = 1.0  # a word's aligned start may run this far before its real one
FINALIZE_SILENCE_S = 0.6  # a pause this long commits what was said before it
MAX_TENTATIVE_AGE_S = 2.5  # an unagreed word this old is committed from the latest hypothesis
PROMPT_CHARS = 200
PROMPT_WORDS = 60  # committed words remembered for the prompt (PROMPT_CHARS is the cap)


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
class DecodeRequest:
    """What the session wants decoded next: its buffer and the text before it."""

    audio: np.ndarray
    prompt: str


@dataclass(frozen=True)
class StepResult:
    finals: tuple[FinalSegment, ...] = ()
    partial: Partial | None = None
    decoded: bool = False  # whether this step ran the model


# (audio relative to the buffer, prompt) -> words with times relative to the buffer
# None: the decode is not usable (a repetition loop); the step is skipped and the next
# one decodes the same audio with more after it.
Transcriber = Callable[[np.ndarray, str], Sequence[TimedWord] | None]
# audio -> speech regions as (start_s, end_s) relative to the audio
SpeechRegions = Callable[[np.ndarray], Sequence[tuple[float, float]]]


def _norm(word: TimedWord) -> str:
    return re.sub(r"[^\w]", "", word.text.lower())


def _text(words: Sequence[TimedWord]) -> str:
    return "".join(w.text for w in words).strip()


def _middle(word: TimedWord) -> float:
    return (word.start + word.end) / 2


def _near_speech(word: TimedWord, regions: Sequence[tuple[float, float]]) -> bool:
    """Whether a word (times relative to the buffer) overlaps VAD speech, padded."""
    return any(
        word.start < end + SPEECH_PAD_S and word.end > start - SPEECH_PAD_S
        for start, end in regions
    )


class StreamingSession:
    def __init__(
        self,
        transcribe: Transcriber | None,
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
        self._initial_prompt = initial_prompt
        self._said: list[TimedWord] = []  # the latest committed words, for the prompt
        self._next_index = 0
        self._regions: list[tuple[float, float]] | None = None  # VAD of the pending decode
        self._finals: list[FinalSegment] = []  # cut before the pending decode

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
    def recent_text(self) -> str:
        """The latest committed words and the current hypothesis: what is being said."""
        return _text([*self._said[-20:], *self._tentative])

    @property
    def ready(self) -> bool:
        """Whether enough new audio arrived for another decode to be worth it."""
        return self._new_samples >= self._min_chunk

    # --- steps --------------------------------------------------------------------------

    def process(self) -> StepResult:
        """Decode the buffer if enough new audio arrived; commit, finalise, trim."""
        request = self.decode_request()
        if request is None:
            return self.skip()
        return self.apply(self._decode(request))

    def decode_request(self, *, finishing: bool = False) -> DecodeRequest | None:
        """The buffer to decode now, or None when no decode is due.

        A due step with no speech (VAD) since the last commit is not decoded; once such a
        pause outlasts ``KEEP_CONTEXT_S`` the buffer is cut to its last ``LEFT_CONTEXT_S``,
        where a speaker may be starting a word.
        """
        if not (self.ready or (finishing and self._new_samples > 0)):
            return None
        self._new_samples = 0
        self._finals = []
        if self._buffer.shape[0] > self._max_buffer:
            # Audio arrived faster than steps ran: cut before decoding, so a decode never
            # sees more than MAX_BUFFER_S (and Whisper's 30 s window).
            self._finals += self._force_cut()
        self._regions = self._find_speech()
        if (
            self._regions is not None
            and not (self._open or self._tentative)
            and self._speech_after(self._regions, self._buffer_start_s) is None
        ):
            # Nothing said since the last commit: keep the context for a while, then
            # let a long pause go, so silence never piles up in the buffer.
            if self.audio_end_s - self._committed_end_s > KEEP_CONTEXT_S:
                self._trim_to(self.audio_end_s - LEFT_CONTEXT_S)
            return None
        return DecodeRequest(self._buffer, self._prompt())

    def skip(self) -> StepResult:
        """The step for which ``decode_request()`` asked nothing: the partial as it is."""
        finals, self._finals = tuple(self._finals), []
        return StepResult(finals=finals, partial=self._partial())

    def apply(self, words: Sequence[TimedWord] | None) -> StepResult:
        """Take the words heard in the requested buffer (times relative to it); None
        when the decode was not usable."""
        if words is None:
            return self.skip()
        finals = self._step(words)
        return StepResult(finals=tuple(finals), partial=self._partial(), decoded=True)

    def finish(self) -> StepResult:
        """Decode what is left and finalise everything: the session's last step."""
        request = self.decode_request(finishing=True)
        return self.finish_with(self._decode(request) if request else None)

    def finish_with(self, words: Sequence[TimedWord] | None) -> StepResult:
        """Finalise everything after the caller decoded ``decode_request(finishing=True)``
        (``words``), or found nothing to decode (None)."""
        finals = list(self._step(words) if words is not None else self.skip().finals)
        self._open += self._tentative
        self._tentative = []
        finals += self._close_segment(self._open)
        self._trim_to(self.audio_end_s)
        return StepResult(finals=tuple(finals), partial=None, decoded=True)

    def _decode(self, request: DecodeRequest) -> Sequence[TimedWord] | None:
        if self._transcribe is None:
            raise RuntimeError("this session is decoded by its caller: use decode_request()")
        return self._transcribe(request.audio, request.prompt)

    # --- internals ----------------------------------------------------------------------

    def _step(self, heard: Sequence[TimedWord]) -> list[FinalSegment]:
        finals, self._finals = self._finals, []
        offset = self._buffer_start_s
        regions = self._regions
        words = [
            TimedWord(
                w.start + self._buffer_start_s, w.end + self._buffer_start_s, w.text, w.probability
            )
            for w in heard
            if regions is None or _near_speech(w, regions)
        ]
        hypothesis = self._after_committed(words)
        unheard = self._speech_after(regions, offset) if not hypothesis else None
        if unheard is not None:
            # Speech after the committed end, yet the model wrote nothing new: after a
            # sentence and a pause Whisper ends at the context. Drop the context, so the
            # next decode starts at the new speech.
            self._trim_to(max(self._committed_end_s, unheard - LEFT_CONTEXT_S))
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

        if regions is not None:
            regions = [(a + offset, b + offset) for a, b in regions]
        silence_at = self._silence_after_speech(regions)
        if silence_at is not None:
            # The speaker paused: what was said before the pause is final. A word that
            # starts before the pause belongs to it: alignment often lets its end run a
            # little past where VAD heard the pause begin.
            before = [w for w in self._tentative if w.start < silence_at]
            self._commit(before)
            self._tentative = self._tentative[len(before) :]
        finals += self._close_segment(self._open)
        if self._buffer.shape[0] > self._max_buffer:
            finals += self._force_cut()
        return finals

    def _prompt(self) -> str:
        """The committed text before the buffer: words still inside it are left out, or
        Whisper takes them as already said and skips the audio that repeats them."""
        before = "".join(w.text for w in self._said if w.end <= self._buffer_start_s + 0.01)
        return (self._initial_prompt + before)[-PROMPT_CHARS:]

    def _after_committed(self, words: list[TimedWord]) -> list[TimedWord]:
        """Drop the words that repeat committed audio at the start of the buffer.

        The buffer keeps ``KEEP_CONTEXT_S`` of committed speech before the new audio, so a
        hypothesis opens by saying it again, not always in the same words ("information
        notice" for the kept "permission notice"). Word times move between decodes by more
        than a short word lasts, so the hypothesis is aligned with the committed words in
        the buffer by text; what follows the last committed word matched (and the words
        heard for up to ``MAX_FRAGMENTS`` unmatched committed ones at the end) is new.
        Where nothing matches, a word whose middle lies before the committed end is old.
        """
        edge = self._committed_end_s
        kept = [_norm(w) for w in self._said if w.end > self._buffer_start_s + 0.01]
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

    def _commit(self, words: Sequence[TimedWord]) -> None:
        if not words:
            return
        self._open += words
        self._committed_end_s = max(self._committed_end_s, words[-1].end)
        self._said = [*self._said, *words][-PROMPT_WORDS:]
        # Keep the last seconds of committed speech, cut at a word's start: the model hears
        # them whole and writes them again (matched and dropped by text) with the context
        # that a short buffer lacks ("so be included" for "shall be included").
        since = self._committed_end_s - KEEP_CONTEXT_S
        first = next((w for w in self._said if w.start >= since), words[-1])
        self._trim_to(max(first.start, since - MAX_WORD_S))

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

    def _find_speech(self) -> list[tuple[float, float]] | None:
        """Speech in the buffer (relative to it), or None without a VAD."""
        return None if self._speech_regions is None else list(self._speech_regions(self._buffer))

    def _speech_after(
        self, regions: list[tuple[float, float]] | None, offset: float
    ) -> float | None:
        """Session time where speech after the committed end starts, if VAD heard any."""
        heard_to = self._committed_end_s + SPEECH_PAD_S
        starts = [offset + a for a, b in regions or () if offset + b > heard_to]
        return max(starts[0], self._committed_end_s) if starts else None

    def _silence_after_speech(self, regions: list[tuple[float, float]] | None) -> float | None:
        """Session time where a long enough pause starts after the open speech, if any.

        ``regions``: the step's VAD speech, in session time.
        """
        if regions is None or not (self._open or self._tentative):
            return None
        first_word = (self._open or self._tentative)[0].start
        start = self._buffer_start_s  # the buffer may have been trimmed since the VAD ran
        regions = [(max(a, start), b) for a, b in regions if b > start]
        if not regions:
            # Only silence left after trimming: the speech before it has ended.
            return start if self.buffer_s >= FINALIZE_SILENCE_S else None
        gaps = [(start, regions[0][0])]  # a pause right at the start of the trimmed buffer
        gaps += [(a[1], b[0]) for a, b in zip(regions, regions[1:], strict=False)]
        gaps.append((regions[-1][1], self.audio_end_s))
        for gap_start, gap_end in gaps:
            if gap_end - gap_start >= FINALIZE_SILENCE_S and gap_start > first_word:
                return gap_start
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
