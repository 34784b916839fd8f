"""The production topology end to end: daphne + qcluster on PostgreSQL, over HTTP."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import require_service
from tests.e2e.stack import Stack
from tests.media import write_tone_wav

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def stack(tmp_path, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    with Stack(tmp_path, model_dir, SCRIBE_WORKERS="1") as running:
        yield running


def submit(client, path, options=None):
    with path.open("rb") as handle:
        response = client.post(
            "/v1/jobs",
            files={"file": (path.name, handle)},
            data={"options": json.dumps(options or {})},
        )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def test_a_job_whose_worker_is_killed_is_retried_and_leaves_no_audio(stack, tmp_path):
    long_audio = write_tone_wav(tmp_path / "long.wav", seconds=1200)
    short_audio = write_tone_wav(tmp_path / "short.wav", seconds=20)
    with stack.client() as client:
        victim = submit(client, long_audio, {"vad": False})
        wait_for(
            lambda: client.get(f"/v1/jobs/{victim}").json().get("processed_sec", 0) > 0,
            120,
            "the first job to make progress",
        )
        # New uploads are accepted while the only worker is busy.
        queued = submit(client, short_audio, {"vad": False})
        assert client.get(f"/v1/jobs/{queued}").json()["queue_position"] == 1

        [(pid,)] = stack.sql("SELECT worker_pid FROM transcription_job WHERE id = %s", victim)
        os.kill(pid, signal.SIGKILL)

        finished = wait_for(
            lambda: (
                (body := client.get(f"/v1/jobs/{victim}").json())["status"]
                in ("completed", "failed")
                and body
            ),
            180,
            "the killed job to finish on retry",
        )
        other = wait_for(
            lambda: (
                (body := client.get(f"/v1/jobs/{queued}").json())["status"]
                in ("completed", "failed")
                and body
            ),
            120,
            "the queued job to finish",
        )

    assert finished["status"] == "completed", finished
    assert finished["attempts"] == 2
    assert other["status"] == "completed", other
    assert "reincarnated worker" in stack.log("qcluster")
    audio_left = [p for p in (stack.media / "sources").rglob("*") if p.is_file()]
    assert audio_left == []
    assert not (stack.media / "work").exists() or not any((stack.media / "work").iterdir())
    assert sorted(p.name for p in (stack.media / "results").iterdir()) == sorted(
        [f"{victim}.json", f"{queued}.json"]
    )


def test_jobs_run_with_redis_as_the_queue_broker(tmp_path, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    audio = write_tone_wav(tmp_path / "short.wav", seconds=20)
    # A database number of its own, so parallel runs and other tests do not share queues.
    with (
        Stack(
            tmp_path,
            model_dir,
            SCRIBE_WORKERS="1",
            REDIS_URL=f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}",
        ) as stack,
        stack.client() as client,
    ):
        job_id = submit(client, audio, {"vad": False})
        body = wait_for(
            lambda: (
                (b := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("completed", "failed")
                and b
            ),
            120,
            "the job to finish",
        )
        ready = client.get("/health/ready").json()
        [(orm_tasks,)] = stack.sql("SELECT count(*) FROM django_q_ormq")

    assert body["status"] == "completed", body
    assert "queue broker" not in " ".join(ready["problems"])
    assert orm_tasks == 0, "the task went through Redis, not the database broker"
