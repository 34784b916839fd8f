"""LiveKit Agents' Deepgram STT plugin on scribe's ``/v1/listen``: run by the interpreter
of the plugin's own venv (``make livekit``), never imported by scribe or its tests.

    livekit-python tests/e2e/livekit_client.py PORT KEY WAV

Plays the 16 kHz mono WAV in 50 ms frames at real time through the plugin's
``SpeechStream`` (``base_url`` pointed at scribe), calls ``flush()`` (the plugin's
``Finalize``) half-way, ends the input, and prints one JSON line: the speech events
``[seconds since start, type, text]`` and every connection the process tried to a host
that is not loopback (refused here, so none may leave the machine).
"""

import asyncio
import ipaddress
import json
import socket
import sys
import time
import wave

OUTSIDE: list[str] = []
_connect = socket.socket.connect


def _loopback_only(sock, address):
    host = address[0] if isinstance(address, tuple) else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not loopback:
        OUTSIDE.append(str(host))
        raise OSError(f"the test allows loopback only, not {host}")
    return _connect(sock, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]

import aiohttp  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.plugins import deepgram  # noqa: E402

FRAME_BYTES = 1600  # 50 ms of 16 kHz s16le


async def main(port: str, key: str, path: str) -> dict:
    with wave.open(path) as source:
        pcm = source.readframes(source.getnframes())
    events: list = []
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

        async def read() -> None:
            async for event in stream:
                text = event.alternatives[0].text if event.alternatives else ""
                events.append([round(time.monotonic() - started, 2), str(event.type), text])

        reader = asyncio.ensure_future(read())
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            chunk = pcm[offset : offset + FRAME_BYTES]
            stream.push_frame(rtc.AudioFrame(chunk, 16000, 1, len(chunk) // 2))
            if offset <= len(pcm) // 2 < offset + FRAME_BYTES:
                stream.flush()
                events.append([round(time.monotonic() - started, 2), "flush", ""])
            await asyncio.sleep(max(0.0, started + (index + 1) * 0.05 - time.monotonic()))
        stream.end_input()
        await asyncio.wait_for(reader, timeout=60)
        await stream.aclose()
    return {"events": events, "outside": OUTSIDE}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(main(*sys.argv[1:4]))) + "\n")
