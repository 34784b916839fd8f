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
  silence and trailing noise); a buffer with no speech in it is not decoded at all;
- each step decodes the whole buffer; the words that two consecutive hypotheses agree on
  (their common prefix after what is already committed) are committed — never retracted;
  a word still unagreed ``MAX_TENTATIVE_AGE_S`` after it was spoken is committed as the
  latest hypothesis has it, so latency stays bounded;
- the words committed by a step are sent as one ``final`` at the end of that step: a
  caption does not wait for the end of a sentence that may not come (a final's lag is the
  time to agreement, about two steps). At a VAD silence the not-yet-agreed words before
  it are committed too: the speaker stopped;
- after each commit the buffer is trimmed to the last committed word, keeping
  the last committed word whole, and the committed text before the buffer is fed back as
  the prompt;
  the next hypothesis starts inside that context, so its first words are matched against
  the committed tail by text (word times shift between decodes) and only what follows the
  match is new;
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
SIMILAR = 0.45  # spelling similarity (difflib ratio) of a word and its mishearing
MAX_FRAGMENTS = 2  # garbled words allowed before the committed tail in a new hypothesis
SPEECH_PAD_S = 0.2  # a word counts as heard when it comes this close to VAD speech
MAX_BUFFER_S = 24.0  # under Whisper's 30 s window
LEFT_CONTEXT_S = 0.5  # audio kept before new speech when a silent buffer is trimmed
MAX_LEFT_CONTEXT_S = 1.0  # audio kept before the committed end: the last committed word
FINALIZE_SILENCE_S = 0.6  # a pause this long closes the open segment
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
Transcriber = Callable[[np.ndarray, str], Sequence[TimedWord]]
# audio -> speech regions as (start_s, end_s) relative to the audio
SpeechRegions = Callable[[np.ndarray], Sequence[tuple[float, float]]]


def _norm(word: TimedWord) -> str:
    return re.sub(r"[^\w]", "", word.text.lower())


def _text(words: Sequence[TimedWord]) -> str:
    return "".join(w.text for w in words).strip()


def _like_any(word: TimedWord, others: Sequence[str]) -> bool:
    """Whether a word looks like one of ``others`` (normalised): a mishearing of it."""
    text = _norm(word)
    return any(SequenceMatcher(None, text, other).ratio() >= SIMILAR for other in others)


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
        self._recent: list[TimedWord] = []  # the last committed words, final or not
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

        A due step whose buffer holds no speech (VAD) is not decoded: its audio is
        dropped but for ``LEFT_CONTEXT_S``, as a speaker may be starting a word there.
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
        if self._regions == [] and not (self._open or self._tentative):
            self._trim_to(self.audio_end_s - LEFT_CONTEXT_S)
            return None
        return DecodeRequest(self._buffer, self._prompt())

    def skip(self) -> StepResult:
        """The step for which ``decode_request()`` asked nothing: the partial as it is."""
        finals, self._finals = tuple(self._finals), []
        return StepResult(finals=finals, partial=self._partial())

    def apply(self, words: Sequence[TimedWord]) -> StepResult:
        """Take the words heard in the requested buffer (times relative to it)."""
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

    def _decode(self, request: DecodeRequest) -> Sequence[TimedWord]:
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
            self._trim_to(max(silence_at, self._committed_end_s))
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
        """Drop the words of the left context, which are already committed.

        The buffer starts ``LEFT_CONTEXT_S`` before the committed end, so a hypothesis
        opens with the last committed word or two, sometimes after a fragment of the one
        before ("in" for the end of "limitation"). Word times move between decodes by more
        than a short word lasts, so the words are matched by text: the longest run of the
        committed tail found among the leading words is dropped with what precedes it,
        then a leading word that lies mostly inside committed audio and looks like a
        committed word.
        """
        edge = self._committed_end_s
        head = [_norm(w) for w in words if w.start < edge][: len(self._recent) + MAX_FRAGMENTS]
        tail = [_norm(w) for w in self._recent]
        skip = 0
        for n in range(min(len(tail), len(head)), 0, -1):
            at = next((i for i in range(len(head) - n + 1) if head[i : i + n] == tail[-n:]), None)
            if at is not None and at <= MAX_FRAGMENTS:
                skip = at + n
                break
        fresh = words[skip:]
        # The kept word misheard ("information" for "permission", "oh" for "so"): a
        # leading word mostly before the edge that looks like a committed one is dropped.
        # What comes before such a word is in committed audio too.
        heard_again = [
            i
            for i, w in enumerate(fresh[:MAX_FRAGMENTS])
            if (w.start + w.end) / 2 < edge and _like_any(w, tail)
        ]
        return fresh[heard_again[-1] + 1 :] if heard_again else fresh

    def _commit(self, words: Sequence[TimedWord]) -> None:
        if not words:
            return
        self._open += words
        self._recent = [*self._recent, *words][-5:]
        self._committed_end_s = max(self._committed_end_s, words[-1].end)
        self._said = [*self._said, *words][-PROMPT_WORDS:]
        # Keep the last committed word whole before the new audio: the model hears it and
        # writes it again (matched and dropped by text) instead of guessing at a fragment.
        self._trim_to(max(words[-1].start, self._committed_end_s - MAX_LEFT_CONTEXT_S))

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
