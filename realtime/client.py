"""A streaming client: play a file into /v1/stream in real time (or faster) and collect
what comes back. Used by `manage.py stream`, the end-to-end tests and the benchmark."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets

from transcription.engine.audio import SAMPLE_RATE_HZ, stream_audio


@dataclass
class StreamRun:
    events: list[dict] = field(default_factory=list)  # each with "at": seconds since start
    close_code: int | None = None
    audio_s: float = 0.0

    @property
    def finals(self) -> list[dict]:
        return [e["segment"] for e in self.events if e["type"] == "final"]

    @property
    def errors(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "error"]


async def stream_file(
    url: str,
    key: str,
    path: Path,
    *,
    speed: float = 1.0,
    chunk_ms: int = 100,
    options: dict | None = None,
    on_event: Callable[[dict], None] | None = None,
    stop_after_s: float | None = None,
) -> StreamRun:
    """Send ``path`` as 16 kHz s16le frames paced at ``speed`` × real time."""
    run = StreamRun()
    started = time.monotonic()
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, max_size=None, open_timeout=30
    ) as ws:

        async def receive() -> None:
            try:
                async for raw in ws:
                    event = json.loads(raw)
                    event["at"] = round(time.monotonic() - started, 3)
                    run.events.append(event)
                    if on_event:
                        on_event(event)
            except websockets.ConnectionClosed:
                return  # the loop ends when the server closes, after "closed" or an error

        listener = asyncio.ensure_future(receive())
        await ws.send(json.dumps({"type": "start", "options": options or {}}))
        chunk = int(SAMPLE_RATE_HZ * chunk_ms / 1000)
        sent = 0
        for block in stream_audio(path, chunk_s=chunk_ms / 1000):
            for start in range(0, block.shape[0], chunk):
                frame = block[start : start + chunk]
                due = started + sent / SAMPLE_RATE_HZ / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if listener.done():
                    break
                pcm = (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()
                await ws.send(pcm)
                sent += frame.shape[0]
                if stop_after_s is not None and sent / SAMPLE_RATE_HZ >= stop_after_s:
                    break
        run.audio_s = sent / SAMPLE_RATE_HZ
        if not listener.done():
            await ws.send(json.dumps({"type": "stop"}))
        await listener
        await ws.wait_closed()
        run.close_code = ws.close_code
    return run
