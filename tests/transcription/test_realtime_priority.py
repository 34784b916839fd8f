"""Streams before batch: a batch job waits between segments while the realtime worker on
its device reports a backlog, on the real coordination cache (files, as the embedded
default, and Redis) and a real pipeline run on the test model."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from realtime.scheduler import LiveSession
from realtime.worker import RealtimeWorker
from tests.conftest import require_service
from tests.media import write_tone_wav
from transcription import priority
from transcription.engine import TranscribeOptions, transcribe
from transcription.priority import BatchTurn, realtime_backlog_report, realtime_backlog_s

HOLD_S = 1.5


@pytest.fixture(params=["files", "redis"])
def coordination(request, settings, tmp_path):
    """The coordination cache as each topology configures it, empty."""
    if request.param == "redis":
        require_service("127.0.0.1", 6379, "Redis")
        cache = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"test-priority-{uuid.uuid4().hex}",
        }
    else:
        cache = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "coordination"),
        }
    settings.CACHES = {**settings.CACHES, "coordination": cache}
    settings.SCRIBE_REALTIME_PRIORITY = True
    yield request.param
    realtime_backlog_report(device="cpu", backlog_s=0)


@pytest.fixture
def tone_60s(tmp_path):
    return write_tone_wav(tmp_path / "tone.wav", seconds=60)


class Backlog:
    """Plays the realtime worker: keeps a backlog reported on ``device`` until stopped,
    renewing it before it expires, as late ticks do."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            realtime_backlog_report(device=self.device, backlog_s=2.5)
            self.stopped.wait(0.5)
        realtime_backlog_report(device=self.device, backlog_s=0)

    def __enter__(self):
        realtime_backlog_report(device=self.device, backlog_s=2.5)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()


def run_in_thread(audio, model, turn, progress):
    done = {}

    def run():
        done["transcript"] = transcribe(
            audio,
            model,
            TranscribeOptions(vad=False, beam_size=1),
            window_s=10.0,
            on_progress=lambda processed, total: progress.append(processed),
            wait_turn=turn,
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def test_a_batch_job_waits_while_live_streams_on_its_device_lag(
    coordination, loaded_model, tone_60s
):
    turn, progress = BatchTurn(), []
    with Backlog("cpu"):
        thread, done = run_in_thread(tone_60s, loaded_model, turn, progress)
        time.sleep(HOLD_S)
        processed_while_held = max(progress, default=0.0)
    thread.join(timeout=120)

    assert processed_while_held <= 10.0, "at most the first window ran while streams lagged"
    assert done["transcript"].duration_s == pytest.approx(60.0, abs=0.01)
    assert turn.waits >= 1
    assert turn.waited_s >= 0.3


def test_with_priority_off_a_batch_job_runs_through_a_realtime_backlog(
    coordination, settings, loaded_model, tone_60s
):
    settings.SCRIBE_REALTIME_PRIORITY = False
    turn, progress = BatchTurn(), []
    with Backlog("cpu"):
        thread, done = run_in_thread(tone_60s, loaded_model, turn, progress)
        thread.join(timeout=120)
        still_held = realtime_backlog_s(device="cpu")

    assert still_held > 0, "the backlog was reported the whole time"
    assert done["transcript"].duration_s == pytest.approx(60.0, abs=0.01)
    assert (turn.waits, turn.waited_s) == (0, 0.0)


def test_a_backlog_on_another_device_does_not_pause_the_job(coordination, loaded_model, tone_60s):
    turn, progress = BatchTurn(), []
    with Backlog("cuda:0"):
        thread, done = run_in_thread(tone_60s, loaded_model, turn, progress)
        thread.join(timeout=120)

    assert done["transcript"].duration_s == pytest.approx(60.0, abs=0.01)
    assert turn.waits == 0


def test_a_batch_job_waits_at_most_max_wait_per_segment(
    coordination, monkeypatch, loaded_model, tone_60s
):
    monkeypatch.setattr(priority, "MAX_WAIT_S", 0.2)
    # Every boundary looks (the six windows' at least): a fast machine decodes the rest
    # of the tone within one CHECK_INTERVAL_S after the first wait.
    monkeypatch.setattr(priority, "CHECK_INTERVAL_S", 0.0)
    turn, progress = BatchTurn(), []
    with Backlog("cpu"):
        thread, done = run_in_thread(tone_60s, loaded_model, turn, progress)
        thread.join(timeout=120)
        assert realtime_backlog_s(device="cpu") > 0, "it finished while streams still lagged"

    assert done["transcript"].duration_s == pytest.approx(60.0, abs=0.01)
    assert turn.waits >= 6
    assert turn.waited_s <= turn.waits * (0.2 + 0.1)


def test_a_report_expires_when_the_realtime_worker_stops_renewing_it(coordination, monkeypatch):
    monkeypatch.setattr(priority, "BACKLOG_TTL_S", 1)
    realtime_backlog_report(device="cpu", backlog_s=3.0)
    assert realtime_backlog_s(device="cpu") == 3.0

    time.sleep(1.3)

    assert realtime_backlog_s(device="cpu") == 0.0


def test_the_realtime_worker_reports_a_late_tick_and_clears_it_once_caught_up(
    coordination, loaded_model
):
    worker = RealtimeWorker()
    worker.model = loaded_model
    session = LiveSession("s1", "reply", owner_id=1)
    worker.sessions[session.session_id] = session

    async def report_with_inbox(seconds: float) -> float:
        session.inbox_samples = int(seconds * 16000)
        await worker._report_backlog()
        return realtime_backlog_s(device="cpu")

    on_time = asyncio.run(report_with_inbox(0.5))
    late = asyncio.run(report_with_inbox(2.0))
    caught_up = asyncio.run(report_with_inbox(0.3))

    assert (on_time, late, caught_up) == (0.0, 2.0, 0.0)
