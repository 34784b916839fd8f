"""PostgreSQL and Redis under load and faults, on real processes: bounded connections,
an exact queue cap, clean 503s in an outage, and no job lost with a broker message."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import redis

from tests.conftest import require_service
from tests.e2e.stack import Stack
from tests.e2e.test_jobs_e2e import submit, wait_for
from tests.media import write_tone_wav
from transcription.services import QUEUE_LOCK_KEY

pytestmark = pytest.mark.e2e

POOL_MAX = 4


@pytest.fixture
def postgres():
    require_service("127.0.0.1", 5432, "PostgreSQL")


def test_the_web_process_never_holds_more_connections_than_its_pool(postgres, tmp_path, model_dir):
    audio = write_tone_wav(tmp_path / "short.wav", seconds=2)
    with (
        Stack(tmp_path, model_dir, batch_workers=False, SCRIBE_DB_POOL_MAX=str(POOL_MAX)) as stack,
        stack.client() as client,
    ):
        job_id = submit(client, audio)
        peak, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], stack.connections().get("scribe-web", 0))
                time.sleep(0.02)

        def poll(_: int) -> list[int]:
            with stack.client() as own:
                return [own.get(f"/v1/jobs/{job_id}").status_code for _ in range(15)]

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(30) as pool:
                statuses = [code for codes in pool.map(poll, range(30)) for code in codes]
        finally:
            stop.set()
            sampler.join()

    assert statuses == [200] * 450
    assert 1 <= peak[0] <= POOL_MAX, f"daphne held {peak[0]} connections"


def test_the_queue_cap_holds_exactly_under_concurrent_uploads(postgres, tmp_path, model_dir):
    audio = write_tone_wav(tmp_path / "short.wav", seconds=1)
    with Stack(tmp_path, model_dir, batch_workers=False, SCRIBE_MAX_QUEUED_JOBS="10") as stack:

        def upload(_: int = 0) -> httpx.Response:
            with stack.client() as own, audio.open("rb") as handle:
                return own.post(
                    "/v1/jobs", files={"file": ("a.wav", handle)}, data={"options": "{}"}
                )

        # An admission waits for the queue's lock: count and insert cannot interleave.
        with psycopg.connect(stack.database_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (QUEUE_LOCK_KEY,))
            with ThreadPoolExecutor(1) as pool:
                first = pool.submit(upload)
                time.sleep(2)
                waited = not first.done()
                holder.execute("SELECT pg_advisory_unlock(%s)", (QUEUE_LOCK_KEY,))
                assert first.result().status_code == 202

        with ThreadPoolExecutor(30) as pool:
            responses = list(pool.map(upload, range(30)))
        [(queued,)] = stack.sql("SELECT count(*) FROM transcription_job WHERE status='queued'")

    assert waited, "the upload was admitted while another admission held the queue lock"
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 9 + [429] * 21
    assert queued == 10
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "queue_full" for r in refused)
    assert all(int(r.headers["Retry-After"]) > 0 for r in refused)


def test_an_unreachable_database_answers_503_with_retry_after_and_recovers(
    postgres, tmp_path, model_dir
):
    with (
        Stack(tmp_path, model_dir, batch_workers=False, SCRIBE_DB_POOL_TIMEOUT_S="2") as stack,
        stack.client() as client,
    ):
        assert client.get("/v1/jobs").status_code == 200
        stack.refuse_connections()
        try:
            refused = client.get("/v1/jobs")
            ready = client.get("/health/ready")
        finally:
            stack.refuse_connections(False)
        recovered = wait_for(
            lambda: client.get("/v1/jobs").status_code == 200, 30, "the API to answer again"
        )

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "database_unavailable"
    assert "Retry in" in refused.json()["error"]["message"]
    assert refused.headers["Retry-After"] == "5"
    assert ready.status_code == 503
    assert any("database" in problem for problem in ready.json()["problems"])
    assert recovered


def test_queued_jobs_whose_broker_messages_are_flushed_still_complete(
    postgres, tmp_path, model_dir
):
    require_service("127.0.0.1", 6379, "Redis")
    redis_url = f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}"
    long_audio = write_tone_wav(tmp_path / "long.wav", seconds=1200)
    short_audio = write_tone_wav(tmp_path / "short.wav", seconds=5)
    with (
        Stack(
            tmp_path,
            model_dir,
            SCRIBE_WORKERS="1",
            REDIS_URL=redis_url,
            SCRIBE_REQUEUE_AFTER_S="5",
        ) as stack,
        stack.client() as client,
    ):
        busy = submit(client, long_audio, {"vad": False})
        wait_for(
            lambda: client.get(f"/v1/jobs/{busy}").json()["status"] == "processing",
            60,
            "the worker to be busy",
        )
        waiting = [submit(client, short_audio, {"vad": False}) for _ in range(5)]
        redis.Redis.from_url(redis_url).flushdb()  # every message still in Redis is gone
        client.post(f"/v1/jobs/{busy}/cancel")

        def all_finished():
            # From the database: polling the API this often would meet the rate limit.
            rows = stack.sql(
                "SELECT status FROM transcription_job WHERE id = ANY(%s::uuid[])", waiting
            )
            done = all(status in ("completed", "failed", "cancelled") for (status,) in rows)
            return done and sorted(status for (status,) in rows)

        finished = wait_for(all_finished, 180, "the five queued jobs to finish")

    assert finished == ["completed"] * 5
    assert "no message in the broker; sending it again" in stack.log("qcluster")
