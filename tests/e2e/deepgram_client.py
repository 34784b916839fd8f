"""Deepgram's official SDK (``deepgram-sdk`` 7.x) playing audio into scribe's /v1/listen,
as a voice agent does: 50 ms frames at real time (or faster), control messages at given
moments of the audio, every message received kept with the client's clock.

Used by the e2e tests and by ``benchmarks/deepgram_latency.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment

FRAME_S = 0.05
RATE = 16000


@dataclass
class LiveRun:
    received: list[tuple[float, Any]] = field(default_factory=list)  # (client s, message)
    sent: list[tuple[float, str]] = field(default_factory=list)  # (client s, what)
    started_at: float = 0.0  # time.monotonic() of the first frame

    def of_type(self, kind: str) -> list[Any]:
        return [m for _, m in self.received if getattr(m, "type", None) == kind]

    @property
    def results(self) -> list[Any]:
        return self.of_type("Results")

    @property
    def finals(self) -> list[Any]:
        return [m for m in self.results if m.is_final]

    def transcript(self) -> str:
        return " ".join(
            m.channel.alternatives[0].transcript
            for m in self.finals
            if m.channel.alternatives[0].transcript
        )


def sdk_client(port: int, key: str) -> AsyncDeepgramClient:
    """The SDK pointed at scribe on loopback (its REST and WebSocket bases both)."""
    environment = DeepgramClientEnvironment(
        base=f"http://127.0.0.1:{port}",
        production=f"ws://127.0.0.1:{port}",
        agent=f"ws://127.0.0.1:{port}",
        agent_rest=f"http://127.0.0.1:{port}",
    )
    return AsyncDeepgramClient(api_key=key, environment=environment)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


# (audio second, action): "Finalize", "KeepAlive", or ("wait", seconds) with no audio.
Action = Callable[[Any], Any]


async def play(
    port: int,
    key: str,
    audio: np.ndarray,
    *,
    speed: float = 1.0,
    at: dict[float, str] | None = None,
    on_message: Callable[[LiveRun, float, Any], list[str]] | None = None,
    close: bool = True,
    linger_s: float = 0.0,
    **query: Any,
) -> LiveRun:
    """Play 16 kHz ``audio`` in 50 ms frames at ``speed`` × real time; ``at`` sends a
    control message once the audio reaches a second; ``on_message`` may answer a message
    with control messages (a voice agent's Finalize); CloseStream at the end (``close``)."""
    run = LiveRun()
    pending = sorted((at or {}).items())
    frame = int(RATE * FRAME_S)
    client = sdk_client(port, key)
    async with client.listen.v1.connect(**query) as connection:

        async def send(what: str) -> None:
            run.sent.append((time.monotonic() - run.started_at, what))
            if what == "Finalize":
                await connection.send_finalize()
            elif what == "KeepAlive":
                await connection.send_keep_alive()
            elif what == "CloseStream":
                await connection.send_close_stream()

        async def receive() -> None:
            async for message in connection:
                now = time.monotonic() - run.started_at
                run.received.append((now, message))
                for what in on_message(run, now, message) if on_message else ():
                    await send(what)

        run.started_at = time.monotonic()
        reader = asyncio.ensure_future(receive())
        for index, start in enumerate(range(0, audio.shape[0], frame)):
            while pending and pending[0][0] <= start / RATE:
                await send(pending.pop(0)[1])
            await connection.send_media(pcm16(audio[start : start + frame]))
            due = run.started_at + (index + 1) * FRAME_S / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        for _, what in pending:
            await send(what)
        await asyncio.sleep(linger_s)
        if close:
            await send("CloseStream")
        await asyncio.wait_for(reader, timeout=120)
    return run


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Record every host the process looks up while inside; the SDK must ask for none
    but the loopback server (a lookup of any other host fails, as with no network)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        asked.append(str(host))
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(f"{host}: only loopback is reachable in this test")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield asked
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]
