"""A frame over scribe's limit is answered by scribe, against a real daphne over a socket:
an ``error`` event naming the largest frame accepted, then close code 4413 (daphne lets an
application send only 1000 and 3000-4999, so not 1009). daphne's own ceiling (1 MiB unless
told) would otherwise cut the socket first, with neither."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from realtime.consumers import FRAME_TOO_LARGE_CLOSE, MAX_FRAME_BYTES
from scribe.web import WEBSOCKET_CEILING_BYTES
from tests.e2e.stack import daphne_serving, manage, sqlite_environment


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_dir):
    """daphne with the realtime worker in process, and a key with the stream scope."""
    tmp_path = tmp_path_factory.mktemp("frames")
    env = sqlite_environment(
        tmp_path,
        SCRIBE_REALTIME_MODEL=str(model_dir),
        SCRIBE_DEVICE="cpu",
        SCRIBE_CPU_THREADS="1",
    )
    key = manage(env, "create_api_key", "--owner", "frames", "--scopes", "stream").strip()
    with daphne_serving(env, tmp_path / "daphne.log") as port:
        yield f"ws://127.0.0.1:{port}/v1/stream", key


async def send_frame(url: str, key: str, frame: bytes | str) -> tuple[list[dict], int | None]:
    """Start a session, send ``frame``; every event after ``ready`` and the close code."""
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(
        url, additional_headers=headers, max_size=None, open_timeout=30
    ) as ws:
        await ws.send(json.dumps({"type": "start", "options": {}}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        assert ready["type"] == "ready", ready
        await ws.send(frame)
        events = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                events.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=30)))
        return events, ws.close_code


@pytest.mark.parametrize(
    "size",
    [10 * 1000 * 1000, MAX_FRAME_BYTES + 2],
    ids=["10 MB", "just over the limit"],
)
def test_a_frame_over_the_limit_gets_an_error_naming_the_limit_then_a_close(served, size):
    events, code = asyncio.run(send_frame(*served, bytes(size)))

    assert code == FRAME_TOO_LARGE_CLOSE == 4413
    (error,) = [e for e in events if e["type"] == "error"]
    assert error["code"] == "frame_too_large"
    assert f"{MAX_FRAME_BYTES} bytes" in error["message"]
    assert f"{size} bytes" in error["message"]


def test_a_text_frame_over_the_limit_is_refused_the_same_way(served):
    text = json.dumps({"type": "finalize", "pad": "x" * MAX_FRAME_BYTES})

    events, code = asyncio.run(send_frame(*served, text))

    assert code == FRAME_TOO_LARGE_CLOSE == 4413
    assert [e["code"] for e in events if e["type"] == "error"] == ["frame_too_large"]


def test_a_frame_at_the_limit_is_taken_and_the_session_carries_on(served):
    async def scenario():
        headers = {"Authorization": f"Bearer {served[1]}"}
        async with websockets.connect(
            served[0], additional_headers=headers, max_size=None, open_timeout=30
        ) as ws:
            await ws.send(json.dumps({"type": "start", "options": {}}))
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(bytes(MAX_FRAME_BYTES))
            await ws.send(json.dumps({"type": "stop"}))
            events = [json.loads(raw) async for raw in ws]
            return events, ws.close_code

    events, code = asyncio.run(scenario())

    # 33 s of audio at once may be reported as falling behind; the frame itself is taken.
    assert {e["code"] for e in events if e["type"] == "error"} <= {"falling_behind"}, events
    assert events[-1]["type"] == "closed" and code == 1000


def test_daphne_ceiling_is_above_scribe_limit_and_bounded():
    assert MAX_FRAME_BYTES < WEBSOCKET_CEILING_BYTES <= 64 * 1024 * 1024
