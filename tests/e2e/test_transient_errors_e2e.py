"""Transient faults of the services a job depends on do not fail the job for good.

A database connection killed under a running job (a failover, a restart, an operator's
``pg_terminate_backend``) and a queue broker that cannot be reached at submission are
faults that pass; the job goes on or is sent again, and the caller never sees them.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import require_service
from tests.e2e.stack import PG_ADMIN_URL, Stack, free_port
from tests.e2e.test_jobs_e2e import submit, wait_for
from tests.media import write_tone_wav

pytestmark = pytest.mark.e2e


def terminate_worker_connections(stack: Stack) -> int:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE %s",
            (stack.database, "%qcluster%"),
        ).fetchall()
    return len(rows)


def test_a_job_survives_its_database_connection_being_killed(tmp_path, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    audio = write_tone_wav(tmp_path / "long.wav", seconds=900)
    with Stack(tmp_path, model_dir, SCRIBE_WORKERS="1") as stack, stack.client() as client:
        job_id = submit(client, audio, {"vad": False})
        wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}").json().get("processed_sec", 0) > 0,
            120,
            "the job to make progress",
        )
        assert terminate_worker_connections(stack) >= 1
        body = wait_for(
            lambda: (
                (b := client.get(f"/v1/jobs/{job_id}").json())["status"]
                not in ("queued", "processing")
                and b
            ),
            240,
            "the job to end",
        )

    assert body["status"] == "completed", body
    assert body["attempts"] == 1, "the job went on where it was, not from the start"
    assert "progress not written" in stack.log("qcluster")


def test_an_upload_is_kept_when_the_queue_broker_is_down(tmp_path, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    audio = write_tone_wav(tmp_path / "short.wav", seconds=2)
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    with (
        Stack(tmp_path, model_dir, batch_workers=False, REDIS_URL=nothing_listens) as stack,
        stack.client() as client,
    ):
        job_id = submit(client, audio)  # asserts 202
        body = client.get(f"/v1/jobs/{job_id}").json()
        [(source_path,)] = stack.sql(
            "SELECT source_path FROM transcription_job WHERE id = %s", job_id
        )

    assert body["status"] == "queued"
    assert source_path, "the audio is kept for recovery to send the job again"
    assert "recovery sends it again" in stack.log("daphne")
