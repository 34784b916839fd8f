#!/usr/bin/env python
"""LiveKit Agents' Deepgram STT plugin pointed at scribe's /v1/listen (``base_url``).

LiveKit Agents is not a scribe dependency (it brings LiveKit's WebRTC wheels): it lives in
a venv of its own, ``.venv/livekit`` (``make livekit``). This script starts the stack
(daphne + ``runworker realtime`` on PostgreSQL and Redis, the random-weight tiny-sized
model, or tiny.en with ``--real``), then runs the plugin's ``SpeechStream`` in that venv
(``tests/e2e/livekit_client.py``, as the test does) on jfk.flac in 50 ms frames at real
time, with a ``flush()`` (the plugin's ``Finalize``) half-way, and prints every speech
event it emits, with its time.

    make livekit && .venv/bin/python benchmarks/livekit_deepgram.py [--real]
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

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "tests" / "e2e" / "livekit_client.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--livekit-python",
        default=str(ROOT / ".venv" / "livekit" / "bin" / "python"),
        help="a Python with the plugin (default: make livekit's)",
    )
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
                [args.livekit_python, str(CLIENT), str(stack.port), key, str(wav)],
                capture_output=True,
                text=True,
                timeout=180,
            )
    if done.returncode != 0:
        print(done.stderr[-4000:])
        return 1
    run = json.loads(done.stdout.strip().splitlines()[-1])
    events = run["events"]
    if run["outside"]:
        print("tried to reach off this machine:", run["outside"])
    for at, kind, text in events:
        print(f"{at:6.2f}  {kind:40s} {text}")
    kinds = {kind for _, kind, _ in events}
    print("\nevent types:", sorted(kinds))
    return 0 if any("FINAL_TRANSCRIPT" in kind for kind in kinds) else 1


if __name__ == "__main__":
    sys.exit(main())
