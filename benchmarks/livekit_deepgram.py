#!/usr/bin/env python
"""LiveKit Agents' Deepgram STT plugin pointed at scribe's /v1/listen (``base_url``).

LiveKit Agents is not a scribe dependency (it brings LiveKit's WebRTC wheels): install it
in a throwaway virtual environment and name its interpreter. This script starts the stack
(daphne + ``runworker realtime`` on PostgreSQL and Redis, the random-weight tiny-sized
model, or tiny.en with ``--real``), then runs the plugin's ``SpeechStream`` in that
interpreter on jfk.flac in 50 ms frames at real time, with a ``flush()`` (the plugin's
``Finalize``) half-way, and prints every speech event it emits.

    python -m venv /tmp/lkvenv && /tmp/lkvenv/bin/pip install livekit-plugins-deepgram
    .venv/bin/python benchmarks/livekit_deepgram.py --livekit-python /tmp/lkvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from engine_memory import SHARED_AUDIO, django_ready
from realtime_real import run_stack, wait_ready

CLIENT = r"""
import asyncio, json, sys, time, wave
import aiohttp
from livekit import rtc
from livekit.plugins import deepgram

port, key, path = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    with wave.open(path) as source:
        pcm = source.readframes(source.getnframes())
    events = []
    async with aiohttp.ClientSession() as session:
        plugin = deepgram.STT(
            api_key=key,
            base_url=f"http://127.0.0.1:{port}/v1/listen",
            http_session=session,
            model="nova-3",
            language="en-US",
            interim_results=True,
            sample_rate=16000,
        )
        stream = plugin.stream()
        started = time.monotonic()

        async def read():
            async for event in stream:
                text = event.alternatives[0].text if event.alternatives else ""
                events.append([round(time.monotonic() - started, 2), str(event.type), text])

        reader = asyncio.ensure_future(read())
        frame = 1600  # bytes: 50 ms of 16 kHz s16le
        for index, offset in enumerate(range(0, len(pcm), frame)):
            chunk = pcm[offset : offset + frame]
            samples = len(chunk) // 2
            stream.push_frame(rtc.AudioFrame(chunk, 16000, 1, samples))
            if offset <= len(pcm) // 2 < offset + frame:
                stream.flush()
            await asyncio.sleep(max(0.0, started + (index + 1) * 0.05 - time.monotonic()))
        stream.end_input()
        await asyncio.wait_for(reader, timeout=60)
        await stream.aclose()
    print(json.dumps(events))

asyncio.run(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--livekit-python", required=True, help="a Python with the plugin")
    parser.add_argument("--real", action="store_true", help="tiny.en instead of random weights")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    django_ready()
    import numpy as np

    from tests.e2e.deepgram_client import pcm16
    from tests.realmodel import real_model_dir
    from transcription.engine.audio import decode_all
    from transcription.engine.testmodel import build_test_model

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = real_model_dir() if args.real else None
        model = model or build_test_model(tmp / "tiny", size="tiny")
        wav = tmp / "jfk.wav"
        import wave

        with wave.open(str(wav), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(pcm16(decode_all(SHARED_AUDIO / "jfk.flac").astype(np.float32)))
        with run_stack(tmp / "stack", model, 2, args.redis_db, SCRIBE_LOG_LEVEL="INFO") as stack:
            key = stack.manage("create_api_key", "--owner", "lk", "--scopes", "stream").strip()
            wait_ready(stack)
            done = subprocess.run(
                [args.livekit_python, "-c", CLIENT, str(stack.port), key, str(wav)],
                capture_output=True,
                text=True,
                timeout=180,
            )
    if done.returncode != 0:
        print(done.stderr[-4000:])
        return 1
    events = json.loads(done.stdout.strip().splitlines()[-1])
    for at, kind, text in events:
        print(f"{at:6.2f}  {kind:40s} {text}")
    kinds = {kind for _, kind, _ in events}
    print("\nevent types:", sorted(kinds))
    return 0 if any("FINAL_TRANSCRIPT" in kind for kind in kinds) else 1


if __name__ == "__main__":
    sys.exit(main())
