"""The streaming core: a rolling audio buffer, VAD and LocalAgreement-2 stabilisation.

Pure: no I/O, no Channels, no model. A ``StreamingSession`` is given a ``transcribe``
function (audio, prompt → timed words) and optionally a ``speech_regions`` function (VAD);
``insert_audio()`` appends samples, ``process()`` re-decodes the buffer and returns what
became final and the current partial, ``finish()`` flushes everything. ``process()`` is
``decode_request()`` (what to decode, or None) then ``apply()`` (the words heard): a
worker serving many sessions collects every ready session's request, decodes them as one
batch and applies each result to its session.

Which words of consecutive hypotheses are committed is ``realtime.agreement``'s (after
whisper_streaming's hypothesis buffer); this module holds the audio and the VAD around it:
- only words that overlap speech found by VAD count (Whisper writes "Thank you." into
  silence and trailing noise); a step with no speech since the last commit is not
  decoded at all;
- each step decodes the whole buffer (every ``min_chunk_s`` of new audio); LocalAgreement
  compares hypotheses at least ``AGREE_S`` apart, and a step between only shows its
  hypothesis as the partial (interims more often than agreement steps, agreement as
  good as at one step a second); the words committed by a step are sent as one
  ``final`` at the end of that step: a caption does not wait for the end of a sentence
  that may not come (a final's lag is the time to agreement, about two steps). At a VAD
  silence the not-yet-agreed words before it are committed too: the speaker stopped;
- after each commit the buffer is trimmed to keep ``KEEP_CONTEXT_S`` of committed speech,
  cut at a word's start, as context for the next decodes; the committed text before the
  buffer is fed back as the prompt (text inside it is left out, or Whisper skips the audio
  that repeats it). When VAD hears speech after the committed end but the model writes
  nothing new (Whisper stopping at the context after a sentence and a pause), the context
  is dropped for the next decode;
- the buffer never exceeds ``MAX_BUFFER_S``: past it the oldest hypothesised words are
  committed and cut, so memory is flat however long the session runs;
- the end of speech: once VAD hears ``pause_s`` of silence after the last word heard, the
  step that sees it commits every word before the pause and reports where speech ended
  (``StepResult.speech_ended_at``), once per stretch of speech. A protocol that marks the
  end of an utterance (Deepgram's ``speech_final``) reads it; the pause that commits words
  and the one that ends speech are the same ``pause_s``;
- such a protocol also has the pause watched between steps (``watch_pause``: VAD kept up to
  date as audio arrives, ``transcription.engine.SpeechTail``): once a tenth of a second of
  silence follows speech no decode has heard whole, that speech is decoded at once, and
  once the silence lasts ``pause_s`` the end of speech is reported without waiting for a
  step or decoding again (the words before it were heard with silence after them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from realtime.agreement import Agreement
from realtime.live_types import FinalSegment, Partial, TimedWord
from transcription.engine.audio import SAMPLE_RATE_HZ

MIN_CHUNK_S = 1.0  # decode again once this much new audio has arrived
# Hypotheses LocalAgreement compares are at least this much audio apart; a decode sooner
# after the last one it was given is shown only (``Agreement.preview``).
AGREE_S = MIN_CHUNK_S
# Between utterances (nothing said since the last final) a step comes after this much new
# audio, so the first words of the next are heard half a second sooner; without speech,
# such a step runs VAD only.
FIRST_CHUNK_S = 0.5
SPEECH_PAD_S = 0.2  # a word counts as heard when it comes this close to VAD speech
MAX_BUFFER_S = 24.0  # under Whisper's 30 s window
LEFT_CONTEXT_S = 0.5  # audio kept before new speech when a silent buffer is trimmed
KEEP_CONTEXT_S = 5.0  # committed speech kept in the buffer, whole words, as context
MAX_WORD_S = 1.0  # a word's aligned start may run this far before its real one
FINALIZE_SILENCE_S = 0.6  # a pause this long commits what was said before it
PAUSE_ONSET_S = 0.1  # silence that may start a pause: a watched session decodes then
HEARD_PAST_S = PAUSE_ONSET_S  # a decode heard speech whole when its audio ran this far past it
PROMPT_CHARS = 200


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
    # Session time where the speaker stopped, when this step heard the pause after them
    # (``pause_s`` of VAD silence after the last word); None otherwise.
    speech_ended_at: float | None = None


# (audio relative to the buffer, prompt) -> words with times relative to the buffer
# None: the decode is not usable (a repetition loop); the step is skipped and the next
# one decodes the same audio with more after it.
Transcriber = Callable[[np.ndarray, str], Sequence[TimedWord] | None]
# audio -> speech regions as (start_s, end_s) relative to the audio
SpeechRegions = Callable[[np.ndarray], Sequence[tuple[float, float]]]


class SilenceWatch(Protocol):
    """VAD kept up to date as audio arrives (``transcription.engine.SpeechTail``)."""

    def feed(self, samples: np.ndarray) -> None: ...

    @property
    def silence_start_s(self) -> float | None:
        """Session time where the silence after the last speech started; None while
        speech goes on."""


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
        pause_s: float = FINALIZE_SILENCE_S,
        watch_pause: SilenceWatch | None = None,
        vad_pad_s: float = 0.0,
    ) -> None:
        self._transcribe = transcribe
        self._speech_regions = speech_regions
        self._min_chunk = int(min_chunk_s * SAMPLE_RATE_HZ)
        self._max_buffer = int(max_buffer_s * SAMPLE_RATE_HZ)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start_s = 0.0  # session time of self._buffer[0]
        self._new_samples = 0  # inserted since the last decode
        self._agreement = Agreement()
        self._initial_prompt = initial_prompt
        self._regions: list[tuple[float, float]] | None = None  # VAD of the pending decode
        self._finals: list[FinalSegment] = []  # cut before the pending decode
        self._pause_s = pause_s
        self._ended_until = 0.0  # the end of speech was reported for words up to here
        self._speech_ended: float | None = None  # found, not yet in a step's result
        self._heard_through_s = 0.0  # every word before here was in a usable decode
        self._decoding_to_s = 0.0  # the end of the buffer the pending decode was given
        self._agreed_to_s = 0.0  # the end of the buffer the last agreement step heard
        # Given, the session watches for the end of speech between steps (a protocol
        # that marks it): VAD kept up to date as audio is inserted.
        self._watch_pause = watch_pause
        self._pause_due = False  # a watched pause made a step due, not yet requested
        self._pause_at: float | None = None  # where speech ended before a watched pause
        # How far ``speech_regions`` pads speech on each side: the silence a pause
        # measures is the gap between regions and this much.
        self._vad_pad_s = vad_pad_s

    # --- inputs -------------------------------------------------------------------------

    def insert_audio(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        self._new_samples += samples.shape[0]
        if self._watch_pause is not None:
            self._watch_pause.feed(samples)

    @property
    def buffer_s(self) -> float:
        return self._buffer.shape[0] / SAMPLE_RATE_HZ

    @property
    def audio_end_s(self) -> float:
        return self._buffer_start_s + self.buffer_s

    @property
    def recent_text(self) -> str:
        """The latest committed words and the current hypothesis: what is being said."""
        return self._agreement.recent_text

    @property
    def ready(self) -> bool:
        """Whether enough new audio arrived for another decode to be worth it (less
        between utterances: ``FIRST_CHUNK_S``), or (when watched) VAD hears the pause
        after the last word heard."""
        if self._new_samples >= self._min_chunk:
            return True
        if (
            self._speech_regions is not None
            and self._agreement.pending_start_s is None
            and self._new_samples >= FIRST_CHUNK_S * SAMPLE_RATE_HZ
        ):
            return True
        return self._new_samples > 0 and self._pause_heard()

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
        self._pause_due = False
        self._finals = []
        if self._buffer.shape[0] > self._max_buffer:
            # Audio arrived faster than steps ran: cut before decoding, so a decode never
            # sees more than MAX_BUFFER_S (and Whisper's 30 s window).
            self._finals += self._force_cut()
        pause_at, self._pause_at = self._pause_at, None
        if (
            pause_at is not None
            and not finishing
            and self._heard_through_s >= pause_at + HEARD_PAST_S
        ):
            # A watched pause after speech the last decode heard whole (it decoded at the
            # pause's onset): what was said is final now, without decoding it again.
            self._end_speech_at(pause_at)
            return None
        self._regions = self._find_speech()
        if (
            self._regions is not None
            and self._agreement.pending_start_s is None
            and self._speech_after(self._regions, self._buffer_start_s) is None
        ):
            # Nothing said since the last commit: keep the context for a while, then
            # let a long pause go, so silence never piles up in the buffer.
            self._note_end_of_speech(self._regions, self._buffer_start_s)
            self._heard_through_s = self.audio_end_s
            if self.audio_end_s - self._agreement.committed_end_s > KEEP_CONTEXT_S:
                self._trim_to(self.audio_end_s - LEFT_CONTEXT_S)
            return None
        if finishing and self._heard_all(self._regions):
            return None  # the last decode heard every word: flushing needs no other
        self._decoding_to_s = self.audio_end_s
        return DecodeRequest(self._buffer, self._prompt())

    def skip(self) -> StepResult:
        """The step for which ``decode_request()`` asked nothing: the partial as it is."""
        finals, self._finals = tuple(self._finals), []
        return StepResult(
            finals=finals, partial=self._agreement.partial(), speech_ended_at=self._ended()
        )

    def apply(self, words: Sequence[TimedWord] | None) -> StepResult:
        """Take the words heard in the requested buffer (times relative to it); None
        when the decode was not usable."""
        if words is None:
            return self.skip()
        self._heard_through_s = self._decoding_to_s
        finals = self._step(words)
        return StepResult(
            finals=tuple(finals),
            partial=self._agreement.partial(),
            decoded=True,
            speech_ended_at=self._ended(),
        )

    def finish(self) -> StepResult:
        """Decode what is left and finalise everything: the session's last step."""
        request = self.decode_request(finishing=True)
        return self.finish_with(self._decode(request) if request else None)

    def finish_with(self, words: Sequence[TimedWord] | None, *, ending: bool = True) -> StepResult:
        """Finalise everything after the caller decoded ``decode_request(finishing=True)``
        (``words``), or found nothing to decode (None). ``ending``: the session's last
        step; else (a finalize) the session goes on, with the last seconds of what was
        said kept as the next decodes' context."""
        if words is not None:
            self._heard_through_s = self._decoding_to_s
        finals = list(self._step(words) if words is not None else self.skip().finals)
        self._agreement.flush()
        finals += self._agreement.close()
        if ending or not finals:
            self._trim_to(self.audio_end_s if ending else self.audio_end_s - LEFT_CONTEXT_S)
        else:
            self._keep_context(finals[-1].words)
        # What was said so far is final; a pause after it is a new end of speech.
        self._speech_ended, self._ended_until = None, self._agreement.heard_end_s
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
        regions_offset = offset
        words = [w.shifted(offset) for w in heard if regions is None or _near_speech(w, regions)]
        hypothesis = self._agreement.past_committed(words, buffer_start_s=offset)
        unheard = self._speech_after(regions, offset) if not hypothesis else None
        if unheard is not None:
            # Speech after the committed end, yet the model wrote nothing new: after a
            # sentence and a pause Whisper ends at the context. Drop the context, so the
            # next decode starts at the new speech.
            self._trim_to(max(self._agreement.committed_end_s, unheard - LEFT_CONTEXT_S))
        if self._decoding_to_s - self._agreed_to_s >= AGREE_S - 1e-6:
            self._agreed_to_s = self._decoding_to_s
            self._keep_context(self._agreement.agree(hypothesis, now_s=self.audio_end_s))
        else:
            self._agreement.preview(hypothesis)

        if regions is not None:
            regions = [(a + offset, b + offset) for a, b in regions]
        silence_at = self._silence_after_speech(regions)
        if silence_at is not None:
            # The speaker paused: what was said before the pause is final.
            self._keep_context(self._agreement.commit_starting_before(silence_at))
        ended = self._note_end_of_speech(self._regions, regions_offset)
        if ended is not None:
            self._keep_context(self._agreement.commit_starting_before(ended))
        finals += self._agreement.close()
        if self._buffer.shape[0] > self._max_buffer:
            finals += self._force_cut()
        return finals

    def _note_end_of_speech(
        self, regions: list[tuple[float, float]] | None, offset: float
    ) -> float | None:
        """Where speech ended, when VAD (``regions``, relative to ``offset``) heard a pause
        of ``pause_s`` after a word not yet reported, the latest such pause (a step that
        runs behind may hold a pause and the speech after it); noted for the step's result."""
        if regions is None or self._agreement.heard_end_s <= self._ended_until:
            return None
        spans = sorted((offset + a, offset + b) for a, b in regions)
        gaps = [(b, c) for (_, b), (c, _) in zip(spans, spans[1:], strict=False)]
        gaps.append((spans[-1][1] if spans else offset, self.audio_end_s))
        ends = self._agreement.heard_word_ends()
        for gap_start, gap_end in reversed(gaps):
            if gap_end - gap_start + self._vad_pad_s < self._pause_s:
                continue
            before = [end for end in ends if end <= gap_start + SPEECH_PAD_S]
            if before and before[-1] > self._ended_until:
                self._ended_until = self._speech_ended = before[-1]
                return before[-1]
        return None

    def _pause_heard(self) -> bool:
        """Whether a watched pause makes a step due now: VAD hears ``PAUSE_ONSET_S`` of
        silence after speech the last decode did not hear whole (decode it, so the end of
        speech can be reported without waiting for a decode), or ``pause_s`` of silence
        after the last word not yet reported (report it)."""
        if self._pause_due:
            return True
        if self._watch_pause is None or self._agreement.heard_end_s <= self._ended_until:
            return False
        speech_end = self._watch_pause.silence_start_s
        if speech_end is None:
            return False
        silence = self.audio_end_s - speech_end
        if silence >= self._pause_s:
            self._pause_at = speech_end
            self._pause_due = True
        elif silence >= PAUSE_ONSET_S and self._heard_through_s < speech_end + HEARD_PAST_S:
            self._pause_due = True
        return self._pause_due

    def _end_speech_at(self, speech_end: float) -> None:
        """Speech ended at ``speech_end`` (a watched pause): commit the words before it,
        close them into this step's final, and note the end for the step's result."""
        before = [
            end for end in self._agreement.heard_word_ends() if end <= speech_end + SPEECH_PAD_S
        ]
        if not before or before[-1] <= self._ended_until:
            return
        self._keep_context(self._agreement.commit_starting_before(speech_end + SPEECH_PAD_S))
        self._finals += self._agreement.close()
        self._ended_until = self._speech_ended = before[-1]

    def _heard_all(self, regions: list[tuple[float, float]] | None) -> bool:
        """Whether VAD (``regions``, relative to the buffer) hears no speech after what the
        last usable decode was given."""
        if regions is None:
            return False
        start = self._buffer_start_s
        return all(start + b <= self._heard_through_s + SPEECH_PAD_S for _, b in regions)

    def _ended(self) -> float | None:
        ended, self._speech_ended = self._speech_ended, None
        return ended

    def _prompt(self) -> str:
        """The committed text before the buffer: words still inside it are left out, or
        Whisper takes them as already said and skips the audio that repeats them."""
        before = self._agreement.said_before(self._buffer_start_s)
        return (self._initial_prompt + before)[-PROMPT_CHARS:]

    def _keep_context(self, committed: Sequence[TimedWord]) -> None:
        """After a commit, keep the last seconds of committed speech, cut at a word's start:
        the model hears them whole and writes them again (matched and dropped by text) with
        the context that a short buffer lacks ("so be included" for "shall be included")."""
        if not committed:
            return
        since = self._agreement.committed_end_s - KEEP_CONTEXT_S
        self._trim_to(max(self._agreement.first_start_since(since), since - MAX_WORD_S))

    def _find_speech(self) -> list[tuple[float, float]] | None:
        """Speech in the buffer (relative to it), or None without a VAD."""
        return None if self._speech_regions is None else list(self._speech_regions(self._buffer))

    def _speech_after(
        self, regions: list[tuple[float, float]] | None, offset: float
    ) -> float | None:
        """Session time where speech after the committed end starts, if VAD heard any."""
        committed_end_s = self._agreement.committed_end_s
        heard_to = committed_end_s + SPEECH_PAD_S
        starts = [offset + a for a, b in regions or () if offset + b > heard_to]
        return max(starts[0], committed_end_s) if starts else None

    def _silence_after_speech(self, regions: list[tuple[float, float]] | None) -> float | None:
        """Session time where a long enough pause starts after the open speech, if any.

        ``regions``: the step's VAD speech, in session time.
        """
        first_word = self._agreement.pending_start_s
        if regions is None or first_word is None:
            return None
        start = self._buffer_start_s  # the buffer may have been trimmed since the VAD ran
        regions = [(max(a, start), b) for a, b in regions if b > start]
        if not regions:
            # Only silence left after trimming: the speech before it has ended.
            return start if self.buffer_s >= self._pause_s else None
        gaps = [(start, regions[0][0])]  # a pause right at the start of the trimmed buffer
        gaps += [(a[1], b[0]) for a, b in zip(regions, regions[1:], strict=False)]
        gaps.append((regions[-1][1], self.audio_end_s))
        for gap_start, gap_end in gaps:
            if gap_end - gap_start >= self._pause_s and gap_start > first_word:
                return gap_start
        return None

    def _force_cut(self) -> list[FinalSegment]:
        """The buffer is full without a pause: commit the older half and cut it off."""
        cut = self._buffer_start_s + self._max_buffer / SAMPLE_RATE_HZ / 2
        self._keep_context(self._agreement.commit_ending_by(cut))
        finals = self._agreement.close()
        self._trim_to(max(cut, self._agreement.committed_end_s - LEFT_CONTEXT_S))
        return finals

    def _trim_to(self, session_s: float) -> None:
        drop = int(round((session_s - self._buffer_start_s) * SAMPLE_RATE_HZ))
        drop = max(0, min(drop, self._buffer.shape[0]))
        if drop:
            self._buffer = self._buffer[drop:].copy()
            self._buffer_start_s += drop / SAMPLE_RATE_HZ
