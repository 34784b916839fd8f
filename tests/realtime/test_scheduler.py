"""The realtime worker's scheduling on its own: no channels, no database, no model."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.live_types import TimedWord
from realtime.scheduler import (
    LATE_BACKLOG_S,
    LiveSession,
    Step,
    backlog_report,
    decode_together,
    due_steps,
    in_turn,
    request_decodes,
    step_events,
    stream_tuning,
)
from realtime.session import MIN_CHUNK_S, StreamingSession
from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.streaming import BufferDecode
from transcription.engine.types import Word


def started(name: str) -> LiveSession:
    """A started session, decoded by its caller, without a VAD."""
    session = LiveSession(name, f"reply-{name}", owner_id=1)
    session.stream = StreamingSession(None)
    return session


def receive(session: LiveSession, seconds: float) -> None:
    samples = np.zeros(int(seconds * SAMPLE_RATE_HZ), dtype=np.float32)
    session.inbox.append(samples)
    session.inbox_samples += samples.shape[0]


def test_each_tick_starts_one_session_further_so_none_is_always_served_last():
    sessions = [started(name) for name in "abc"]
    turn, orders = 0, []
    for _ in range(3):
        ordered, turn = in_turn(sessions, turn)
        orders.append("".join(s.session_id for s in ordered))

    assert orders == ["bca", "cab", "abc"]


def test_a_session_gets_a_step_once_a_chunk_of_audio_arrived():
    early, ready, opened = started("early"), started("ready"), LiveSession("o", "r", 1)
    receive(early, MIN_CHUNK_S / 2)
    receive(ready, MIN_CHUNK_S)

    steps = due_steps([early, ready, opened])

    assert [step.session for step in steps] == [ready]
    assert early.inbox == [] and early.stream is not None
    assert early.stream.buffer_s == pytest.approx(MIN_CHUNK_S / 2), "its audio waits in it"
    assert not opened.due, "a session that never started has nothing to step"


def test_finalize_and_stop_step_a_session_once_whatever_audio_it_has():
    finalizing, stopping = started("f"), started("s")
    finalizing.finalize, stopping.stop = True, True

    steps = due_steps([finalizing, stopping])
    again = due_steps([finalizing])

    assert [(s.finishing, s.stopping) for s in steps] == [(True, False), (True, True)]
    assert again == [] and finalizing.finalize is False


def test_a_failing_batch_is_decoded_one_by_one_and_only_the_bad_session_fails():
    good, bad = started("good"), started("bad")
    for session in (good, bad):
        receive(session, MIN_CHUNK_S)
    steps = due_steps([good, bad])
    batches = []

    def decode_batch(batch: list[Step]) -> None:
        batches.append([step.session.session_id for step in batch])
        if any(step.session is bad for step in batch):
            raise RuntimeError("out of memory")
        for step in batch:
            step.take(BufferDecode(words=(Word(0.0, 0.4, " hi", 0.9),), language="en"))

    decode_together(request_decodes(steps), decode_batch)

    assert batches == [["good", "bad"], ["good"], ["bad"]]
    assert steps[0].error is None and steps[0].words == [TimedWord(0.0, 0.4, " hi", 0.9)]
    assert steps[1].error is not None and "out of memory" in steps[1].error
    assert good.language == "en" and bad.language is None


def test_a_decode_that_loops_is_no_hypothesis_and_one_in_silence_hears_nothing():
    looping, silent = (Step(started(name), stopping=False, finishing=False) for name in "ls")

    looping.take(BufferDecode(words=(), language="en", text=" la" * 200))
    silent.take(BufferDecode(words=(), language="en", no_speech_prob=0.99, avg_logprob=-2.0))

    assert looping.words is None
    assert silent.words == []


def test_batch_workers_hear_of_a_late_tick_and_once_of_catching_up():
    late = LATE_BACKLOG_S + 1.0

    assert backlog_report(0.5, reported_late=False) is None
    assert backlog_report(late, reported_late=False) == late
    assert backlog_report(late, reported_late=True) == late
    assert backlog_report(0.5, reported_late=True) == 0.0


def test_sessions_are_decoded_in_batches_of_at_most_the_worker_batch_size():
    sessions = [started(name) for name in "abcde"]
    for session in sessions:
        receive(session, MIN_CHUNK_S)
    batches = []

    def decode_batch(batch: list[Step]) -> None:
        batches.append([step.session.session_id for step in batch])
        for step in batch:
            step.take(BufferDecode(words=(), language="en"))

    decode_together(request_decodes(due_steps(sessions)), decode_batch, max_batch=2)

    assert sorted(len(batch) for batch in batches) == [1, 2, 2]
    assert sorted(name for batch in batches for name in batch) == list("abcde")


@pytest.mark.parametrize(
    "finalize, stop, answered",
    [(True, False, True), (True, True, True), (False, True, False)],
)
def test_a_finalize_is_answered_with_finalized_even_when_a_stop_came_with_it(
    finalize, stop, answered
):
    session = started("s")
    receive(session, 0.3)
    session.finalize, session.stop = finalize, stop

    (step,) = due_steps([session])
    step.apply()
    kinds = [event["type"] for event in step_events(step)]

    assert ("finalized" in kinds) is answered
    assert step.stopping is stop


def test_a_protocol_asks_the_core_for_its_step_and_pause_within_bounds():
    assert stream_tuning({}) == {}
    assert stream_tuning({"tuning": {"step_s": 0.5, "pause_s": 0.01}}) == {
        "min_chunk_s": 0.5,
        "pause_s": 0.3,
    }
    assert stream_tuning({"tuning": {"step_s": 5, "pause_s": 9}}) == {
        "min_chunk_s": MIN_CHUNK_S,
        "pause_s": 2.0,
    }
    assert stream_tuning({"tuning": {"watch_pause": True}}) == {"watch_pause": True}
