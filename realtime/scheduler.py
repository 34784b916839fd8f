"""The realtime worker's scheduling, without its I/O: which sessions are due and in what
turn, what each step decodes, which steps are decoded together (every due one, in one
batch; each alone if the batch fails), what a decode leaves in its session, and when batch
workers are told that live decoding runs late.

``realtime.worker`` does the I/O around it: channel messages, the decode thread and the
model, storage, metrics and keep-alive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from glossary.bias import HotwordChoice
from glossary.review import Review
from realtime.audio import FrameDecoder
from realtime.live_types import FinalSegment, TimedWord, heard_words
from realtime.session import (
    FINALIZE_SILENCE_S,
    MIN_CHUNK_S,
    DecodeRequest,
    StepResult,
    StreamingSession,
)
from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.streaming import (
    SPEECH_REGIONS_PAD_S,
    BufferDecode,
    BufferRequest,
    SpeechTail,
    speech_regions,
)
from transcription.options import JobOptions

logger = logging.getLogger(__name__)

BACKLOG_WARN_S = 10.0  # audio waiting to be decoded before the client is told
BACKLOG_MAX_S = 60.0  # past this, new frames are refused (and the client told so)
# Audio waiting beyond one step (MIN_CHUNK_S) after a tick: decoding runs late, and batch
# workers on the same device are asked to yield (transcription/priority.py).
LATE_BACKLOG_S = MIN_CHUNK_S
# What a protocol may ask of the streaming core (``stream_tuning``): a step after 0.25 s of
# new audio at the most often; a pause VAD can hear (its minimum silence is 0.3 s) to 2 s.
MIN_STEP_S = 0.25
MIN_PAUSE_S = 0.3
MAX_PAUSE_S = 2.0


def channel_session_id(session_id: str, channel: int) -> str:
    """The worker's id of one channel of a session opened with several (``channels``): the
    first channel is the session itself, so a one-channel session is unchanged."""
    return session_id if channel == 0 else f"{session_id}.{channel}"


@dataclass
class LiveSession:
    session_id: str
    reply_channel: str
    owner_id: int
    channel: int | None = None  # which channel of a session opened with several
    job_id: Any = None
    options: JobOptions = field(default_factory=JobOptions)
    stream: StreamingSession | None = None
    decoder: FrameDecoder | None = None
    inbox: list[np.ndarray] = field(default_factory=list)
    inbox_samples: int = 0
    finalize: bool = False
    stop: bool = False
    language: str | None = None
    decode_s: float = 0.0
    steps: int = 0
    speech_s: float = 0.0
    dropped_s: float = 0.0
    warned_at: float = 0.0
    confidences: list[float] = field(default_factory=list)
    hotwords: str | None = None
    choice: HotwordChoice | None = None
    review: Review = field(default_factory=Review)
    # When the worker last read a message of this session (time.monotonic()): its
    # consumer's keep-alive renews it while the client is connected.
    heard_at: float = field(default_factory=time.monotonic)

    @property
    def backlog_s(self) -> float:
        return self.inbox_samples / SAMPLE_RATE_HZ

    def step_hotwords(self) -> str | None:
        """This step's hotwords: with a glossary, the terms the session's latest words say
        or sound like (the previous step is this one's first pass); else the request's."""
        if self.choice is None or self.stream is None:
            return self.hotwords
        return self.choice(self.stream.recent_text)

    @property
    def due(self) -> bool:
        """Whether the session has work for the scheduler."""
        if self.stream is None:
            return False
        return bool(self.inbox or self.stream.ready or self.finalize or self.stop)

    def count_final(self, final: FinalSegment) -> None:
        """Add a final to the session's figures (its job's metrics)."""
        self.confidences.append(final.confidence)
        self.speech_s += final.end - final.start


@dataclass
class Step:
    """One session's part of a scheduler tick, filled in by the decode thread."""

    session: LiveSession
    stopping: bool
    finishing: bool
    finalizing: bool = False  # a finalize was asked for (it is answered even with a stop)
    request: DecodeRequest | None = None
    words: list[TimedWord] | None = None
    result: StepResult = field(default_factory=StepResult)
    finals: list[dict] = field(default_factory=list)
    error: str | None = None

    @property
    def stream(self) -> StreamingSession:
        assert self.session.stream is not None, "only started sessions are stepped"
        return self.session.stream

    def buffer_request(self) -> BufferRequest:
        """What the model is asked for this step."""
        assert self.request is not None
        return BufferRequest(
            self.request.audio,
            prompt=self.request.prompt,
            language=self.session.language,
            hotwords=self.session.step_hotwords(),
        )

    def take(self, decoded: BufferDecode) -> None:
        """Keep what the model heard; a session's language is detected once, then kept."""
        if self.session.language is None and decoded.words:
            self.session.language = decoded.language
        self.words = heard_words(decoded)

    def apply(self) -> tuple[FinalSegment, ...]:
        """Apply the words heard (if any) to the session's stream; return its new finals."""
        if self.finishing:
            self.result = self.stream.finish_with(self.words, ending=self.stopping)
        elif self.words is not None:
            self.result = self.stream.apply(self.words)
        else:
            self.result = self.stream.skip()
        self.session.steps += int(self.request is not None)
        return self.result.finals

    def fail(self, exc: Exception | str) -> None:
        """End this step's session with an error; the other sessions go on."""
        session = self.session
        logger.error(
            "session %s failed: %s",
            session.session_id,
            exc,
            exc_info=True,
            extra={"session_id": session.session_id, "job_id": session.job_id},
        )
        self.error = f"This session failed and was closed: {exc}"


def in_turn(sessions: Sequence[LiveSession], turn: int) -> tuple[list[LiveSession], int]:
    """The sessions in this tick's order, starting one further each tick so that none is
    always served last; and the next tick's turn."""
    turn = (turn + 1) % max(1, len(sessions))
    return [*sessions[turn:], *sessions[:turn]], turn


def due_steps(sessions: Iterable[LiveSession]) -> list[Step]:
    """This tick's steps: each due session's new audio goes into its stream, and a session
    with enough new audio, or asked to finalise or stop, gets a step."""
    steps = []
    for session in sessions:
        if not session.due:
            continue
        stream = session.stream
        assert stream is not None
        for samples in session.inbox:
            stream.insert_audio(samples)
        session.inbox, session.inbox_samples = [], 0
        stopping = session.stop  # read before the await: a stop arriving meanwhile waits
        finalizing = session.finalize
        finishing = stopping or finalizing
        if finishing or stream.ready:
            session.finalize = False
            steps.append(
                Step(session, stopping=stopping, finishing=finishing, finalizing=finalizing)
            )
    return steps


def request_decodes(steps: list[Step]) -> list[Step]:
    """Ask each step's stream what to decode; return the steps that decode."""
    for step in steps:
        try:
            step.request = step.stream.decode_request(finishing=step.finishing)
        except Exception as exc:
            step.fail(exc)
    return [step for step in steps if step.request is not None and step.error is None]


def decode_together(
    steps: list[Step], decode_batch: Callable[[list[Step]], None], *, max_batch: int = 0
) -> None:
    """Decode the steps in batches of at most ``max_batch`` (0: all in one); if a batch
    fails, each of its steps on its own, so only the session that cannot be decoded fails."""
    if max_batch and len(steps) > max_batch:
        for first in range(0, len(steps), max_batch):
            decode_together(steps[first : first + max_batch], decode_batch)
        return
    if not steps:
        return
    try:
        decode_batch(steps)
    except Exception:
        if len(steps) == 1:
            steps[0].fail("decoding failed")
            return
        logger.exception("a batch of %d sessions failed; decoding them one by one", len(steps))
        for step in steps:
            try:
                decode_batch([step])
            except Exception as exc:
                step.fail(exc)


def backlog_report(behind_s: float, *, reported_late: bool) -> float | None:
    """What to tell batch workers after a tick with ``behind_s`` of audio waiting: the
    backlog while decoding runs late, 0 once it caught up after a late report, None when
    there is nothing new to say."""
    late = behind_s > LATE_BACKLOG_S
    if not (late or reported_late):
        return None
    return behind_s if late else 0.0


class Tuning(TypedDict, total=False):
    """``StreamingSession``'s settings a protocol may choose."""

    min_chunk_s: float
    pause_s: float
    watch_pause: bool


def stream_tuning(message: dict) -> Tuning:
    """The streaming core's settings a protocol asked for in ``session.start``: ``step_s``
    (decode after this much new audio: the interim cadence; LocalAgreement still compares
    hypotheses a whole ``MIN_CHUNK_S`` apart), ``pause_s`` (the silence that ends speech)
    and ``watch_pause`` (decode as soon as VAD hears that pause, for a protocol that marks
    the end of speech); each within what the core supports, its default where absent."""
    tuning = message.get("tuning") or {}
    chosen: Tuning = {}
    if tuning.get("step_s"):
        chosen["min_chunk_s"] = min(max(float(tuning["step_s"]), MIN_STEP_S), MIN_CHUNK_S)
    if tuning.get("pause_s"):
        chosen["pause_s"] = min(max(float(tuning["pause_s"]), MIN_PAUSE_S), MAX_PAUSE_S)
    if tuning.get("watch_pause"):
        chosen["watch_pause"] = True
    return chosen


def live_stream(message: dict, *, prompt: str) -> StreamingSession:
    """A session's streaming core (decoded by the worker), as its protocol tuned it in
    ``session.start`` (``stream_tuning``), with VAD and the pause watched where asked."""
    tuning = stream_tuning(message)
    return StreamingSession(
        None,
        speech_regions,
        initial_prompt=prompt,
        min_chunk_s=tuning.get("min_chunk_s", MIN_CHUNK_S),
        pause_s=tuning.get("pause_s", FINALIZE_SILENCE_S),
        watch_pause=SpeechTail() if tuning.get("watch_pause") else None,
        vad_pad_s=SPEECH_REGIONS_PAD_S,
    )


def step_events(step: Step) -> list[dict]:
    """A step's finals and partial as events, in the order a client reads them.

    The finals of a finalize (with a stop too: both arrived before the step) are marked
    ``flushed`` and followed by ``finalized``, even when there are none; where the step
    heard the speaker stop, its last final is marked ``end_of_speech`` (an
    ``end_of_speech`` event when the words were final already)."""
    events: list[dict] = [{"type": "final", "segment": final} for final in step.finals]
    flushed = step.finalizing and step.error is None
    for event in events:
        event["flushed"] = flushed
    ended = step.result.speech_ended_at
    if ended is not None and events:
        events[-1]["end_of_speech"] = True
    elif ended is not None:
        events.append({"type": "end_of_speech", "at": round(ended, 3)})
    if flushed:
        events.append({"type": "finalized"})
    partial = step.result.partial
    if partial is not None and step.error is None:
        words = [
            {"start": w.start, "end": w.end, "text": w.text, "probability": w.probability}
            for w in map(TimedWord.to_word, partial.words)
        ]
        events.append(
            {
                "type": "partial",
                "text": partial.text,
                "start": partial.start,
                "end": partial.end,
                "words": words,
            }
        )
    return events
