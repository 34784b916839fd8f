"""Live streaming on the production topology: daphne + `runworker realtime` on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

import pytest
import websockets

from realtime.client import stream_file
from tests.conftest import require_service, shared_clip
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path, model_dir):
    with live_stack(tmp_path, model_dir) as running:
        yield running


@contextlib.contextmanager
def live_stack(tmp_path, model_dir, **env: str):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    redis_db = os.getpid() % 15 + 1
    with Stack(
        tmp_path,
        model_dir,
        batch_workers=False,
        realtime_worker=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        **env,
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


async def refused(url: str, headers: dict[str, str]) -> tuple[dict, int | None]:
    """Connect as any client would: the error event the server sends, and its close code."""
    async with websockets.connect(url, additional_headers=headers, open_timeout=30) as ws:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout=30)
        return event, ws.close_code


def test_a_real_client_receives_the_refusal_close_codes(tmp_path, model_dir):
    with live_stack(tmp_path, model_dir, SCRIBE_REALTIME_MAX_SESSIONS="1") as stack:
        url = f"ws://127.0.0.1:{stack.port}/v1/stream"
        no_stream = stack.manage(
            "create_api_key", "--owner", "batch", "--scopes", "transcribe"
        ).strip()
        live = stack.manage("create_api_key", "--owner", "live", "--scopes", "stream").strip()

        async def scenario():
            results = {
                "no key": await refused(url, {}),
                "bad key": await refused(url, {"Authorization": "Bearer sk_not_a_key"}),
                "no stream scope": await refused(url, {"Authorization": f"Bearer {no_stream}"}),
            }
            bearer = {"Authorization": f"Bearer {live}"}
            async with websockets.connect(url, additional_headers=bearer, open_timeout=30):
                results["over the cap"] = await refused(url, bearer)
            return results

        results = asyncio.run(scenario())

    assert {case: (event["code"], code) for case, (event, code) in results.items()} == {
        "no key": ("unauthorized", 4401),
        "bad key": ("unauthorized", 4401),
        "no stream scope": ("forbidden", 4403),
        "over the cap": ("session_limit", 4429),
    }
    assert all(event["type"] == "error" and event["message"] for event, _ in results.values())


def test_with_no_realtime_worker_a_real_client_is_told_no_worker_4503(tmp_path, model_dir):
    """daphne as `serve` and the images start it waits for scribe's answer: no worker takes
    the session within OPEN_TIMEOUT_S (10 s), and the client gets no_worker and 4503, not
    a connection daphne dropped after its own 5 s handshake timeout."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    redis_db = os.getpid() % 15 + 1
    with Stack(
        tmp_path, model_dir, batch_workers=False, REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}"
    ) as stack:
        key = stack.manage("create_api_key", "--owner", "live", "--scopes", "stream").strip()
        url = f"ws://127.0.0.1:{stack.port}/v1/stream"
        event, code = asyncio.run(refused(url, {"Authorization": f"Bearer {key}"}))

    assert (event["type"], event["code"], code) == ("error", "no_worker", 4503)
