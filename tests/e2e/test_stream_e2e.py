"""Live streaming on the production topology: daphne + `runworker realtime` on Redis."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from realtime.client import stream_file
from tests.conftest import require_service, shared_clip
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    redis_db = os.getpid() % 15 + 1
    with Stack(
        tmp_path,
        model_dir,
        batch_workers=False,
        realtime_worker=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
    ) as running:
        running.key = running.manage(
            "create_api_key", "--owner", "live", "--scopes", "stream", "transcribe"
        ).strip()
        yield running


def test_a_file_streamed_to_the_realtime_worker_comes_back_as_finals(stack):
    url = f"ws://127.0.0.1:{stack.port}/v1/stream"

    run = asyncio.run(stream_file(url, stack.key, shared_clip("jfk.flac"), speed=4.0))

    kinds = [e["type"] for e in run.events]
    assert kinds[0] == "ready" and kinds[-1] == "closed", kinds
    assert run.finals, "finals came back"
    assert run.close_code == 1000
    job_id = run.events[-1]["job_id"]
    with stack.client() as client:
        result = client.get(f"/v1/jobs/{job_id}/result?format=json").json()
    assert [s["text"].strip() for s in result["segments"]] == [f["text"] for f in run.finals]


def test_killing_the_realtime_worker_ends_the_session_with_an_error(stack):
    url = f"ws://127.0.0.1:{stack.port}/v1/stream"
    worker = next(p for p in stack.processes if "runworker" in p.args)

    def kill_on_ready(event):
        if event["type"] == "ready":
            os.kill(worker.pid, signal.SIGKILL)

    async def scenario():
        return await asyncio.wait_for(
            stream_file(
                url, stack.key, shared_clip("multilingual.mp3"), speed=1.0, on_event=kill_on_ready
            ),
            timeout=60,
        )

    run = asyncio.run(scenario())

    assert [e["code"] for e in run.errors] == ["worker_lost"]
    assert run.close_code == 4500


def test_the_worker_serves_new_sessions_after_its_database_connections_are_killed(stack):
    url = f"ws://127.0.0.1:{stack.port}/v1/stream"
    killed: list[int] = []

    def kill_connections_on_first_final(event):
        if event["type"] == "final" and not killed:
            # What a PostgreSQL restart does to the worker: every session it holds ends.
            rows = stack.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'scribe-realtime' AND datname = current_database()"
            )
            killed.append(len(rows))

    first = asyncio.run(
        stream_file(
            url,
            stack.key,
            shared_clip("jfk.flac"),
            speed=2.0,
            on_event=kill_connections_on_first_final,
        )
    )
    second = asyncio.run(stream_file(url, stack.key, shared_clip("jfk.flac"), speed=4.0))

    assert killed and killed[0] >= 1, "the worker held a connection to kill"
    assert first.close_code == 1000 and first.events[-1]["type"] == "closed"
    assert not first.errors, "the session in progress survives the lost connections"
    assert second.finals, "a new session still gets finals"
    assert second.close_code == 1000 and not second.errors
    job_id = second.events[-1]["job_id"]
    with stack.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"
