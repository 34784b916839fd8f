"""Two or more `runworker realtime` processes on one stack: start them, see what they
advertise, hold live sessions on them and time how soon a client hears that its worker
was killed.

Shared by tests/e2e/test_realtime_workers_e2e.py and benchmarks/realtime_failover.py.
What the workers advertise is read from Redis as any operator could read it
(docs/streaming.md, "Realtime workers in the plural"): a set of worker channels and one
key per worker that expires unless renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis
import websockets

from tests.e2e.stack import Stack


@contextlib.contextmanager
def pooled_stack(tmp: Path, model_dir: Path, *, redis_db: int, **env: str) -> Iterator[Stack]:
    """daphne and two realtime workers on PostgreSQL and Redis database ``redis_db``, no
    batch worker; ``stack.key`` may stream."""
    deployment = f"e2e-pool-{uuid.uuid4().hex[:8]}"
    with Stack(
        tmp,
        model_dir,
        batch_workers=False,
        realtime_worker=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        SCRIBE_DEPLOYMENT=deployment,
        **env,
    ) as stack:
        stack.key = stack.manage(
            "create_api_key", "--owner", "live", "--scopes", "stream", "transcribe"
        ).strip()
        spawn_worker(stack)
        yield stack


def spawn_worker(stack: Stack) -> subprocess.Popen:
    """One more `manage.py runworker realtime`, as a second GPU's worker would run."""
    number = sum("runworker" in process.args for process in stack.processes) + 1
    return stack.spawn(f"runworker-{number}", sys.executable, "manage.py", "runworker", "realtime")


def workers(stack: Stack) -> list[subprocess.Popen]:
    """The realtime worker processes still running."""
    return [p for p in stack.processes if "runworker" in p.args and p.poll() is None]


def adverts(stack: Stack) -> list[dict]:
    """What the live realtime workers advertise: channel, free, cap, host, pid."""
    deployment = stack.env["SCRIBE_DEPLOYMENT"]
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        channels = sorted(client.smembers(f"{deployment}:realtime:workers"))
        values = [client.get(f"{deployment}:realtime:worker:".encode() + c) for c in channels]
    finally:
        client.close()
    return [json.loads(value) for value in values if value is not None]


def wait_for_adverts(stack: Stack, count: int, *, free: int | None = None, timeout_s=180) -> list:
    """Wait until ``count`` workers advertise (each with ``free`` slots, if given)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = adverts(stack)
        if len(seen) == count and (free is None or all(a["free"] == free for a in seen)):
            return seen
        time.sleep(0.2)
    logs = "\n".join(log.read_text() for log in sorted(stack.logs.glob("runworker*.log")))
    raise AssertionError(f"{count} workers never advertised (last seen: {seen}); logs:\n{logs}")


@dataclass
class Live:
    """A live session as a client holds it: its socket and the first event it got."""

    ws: websockets.ClientConnection
    first: dict

    async def ended(self) -> tuple[float, dict | None, int | None]:
        """Wait until the server closes it: when (monotonic), its last error, the code."""
        error = None
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                event = json.loads(await self.ws.recv())
                if event["type"] == "error":
                    error = event
        return time.monotonic(), error, self.ws.close_code

    async def stop(self) -> tuple[dict | None, int | None]:
        """Send ``stop``: the session's last event and the close code."""
        await self.ws.send(json.dumps({"type": "stop"}))
        _, error, code = await asyncio.wait_for(self.ended(), timeout=60)
        return error, code


async def feed(live: Live, audio: np.ndarray, frame_s: float = 0.1) -> None:
    """Send ``audio`` (16 kHz float) in real time, over and over, until the session ends
    or the task is cancelled."""
    samples = int(16000 * frame_s)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            for start in range(0, pcm.shape[0], samples):
                await live.ws.send(pcm[start : start + samples].tobytes())
                await asyncio.sleep(frame_s)


async def open_session(url: str, key: str) -> Live:
    """Connect and start a session: ``first`` is ``ready``, or the refusal's ``error``."""
    ws = await websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=30
    )
    with contextlib.suppress(websockets.ConnectionClosed):  # a refusal closes at once
        await ws.send(json.dumps({"type": "start", "options": {"language": "en"}}))
    first = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    return Live(ws, first)


async def kill_and_time(
    process: subprocess.Popen, sessions: list[Live]
) -> tuple[float, Live, dict | None, int | None]:
    """SIGKILL ``process`` (a realtime worker) and wait for the first of ``sessions`` to
    be closed: seconds from the kill to the close, that session, its last error event and
    its close code."""
    waits = {asyncio.ensure_future(session.ended()): session for session in sessions}
    os.kill(process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    done, pending = await asyncio.wait(waits, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    for wait in pending:
        wait.cancel()
    process.wait(timeout=10)
    assert done, "no client was told within 30 s that its worker was killed"
    first = done.pop()
    closed_at, error, code = first.result()
    return closed_at - killed_at, waits[first], error, code
