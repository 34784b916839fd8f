"""LiveKit Agents' Deepgram STT plugin (``livekit-plugins-deepgram``) pointed at scribe's
``/v1/listen`` with ``base_url``, unchanged: daphne + the realtime worker on Redis, the real
tiny.en, jfk.flac at real time in 50 ms frames with a ``flush()`` (``Finalize``) half-way.

The plugin brings LiveKit's WebRTC wheels and its own pins, so it lives in a venv of its
own, ``.venv/livekit`` (``make livekit``; ``make test`` makes it), and runs there
(``tests/e2e/livekit_client.py``); this test skips without it, except in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import wave

import numpy as np
import pytest

from scribe.settings import BASE_DIR
from tests.conftest import shared_clip
from tests.e2e.deepgram_client import pcm16
from tests.e2e.test_stream_e2e import live_stack
from transcription.engine.audio import decode_all

pytestmark = [pytest.mark.e2e, pytest.mark.real_model, pytest.mark.shared_audio]

LIVEKIT_PYTHON = BASE_DIR / ".venv" / "livekit" / "bin" / "python"
CLIENT = BASE_DIR / "tests" / "e2e" / "livekit_client.py"


@pytest.fixture
def livekit_python():
    if not LIVEKIT_PYTHON.exists():
        message = f"LiveKit's plugin venv is absent ({LIVEKIT_PYTHON}): run `make livekit`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return LIVEKIT_PYTHON


def test_livekits_deepgram_plugin_transcribes_through_listen(
    tmp_path, real_model_dir, livekit_python
):
    wav = tmp_path / "jfk.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm16(decode_all(shared_clip("jfk.flac")).astype(np.float32)))
    env = {"SCRIBE_REALTIME_MODEL": str(real_model_dir), "SCRIBE_CPU_THREADS": "2"}

    with live_stack(tmp_path, real_model_dir, **env) as stack:
        done = subprocess.run(
            [str(livekit_python), str(CLIENT), str(stack.port), stack.key, str(wav)],
            capture_output=True,
            text=True,
            timeout=180,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )
        # One session for the whole clip: the plugin reconnects when a socket closes (as
        # WhisperLiveKit's does on Finalize), which would make a job per connection.
        sessions = stack.manage(
            "shell",
            "-c",
            "from transcription.models import Job; "
            "print(Job.objects.filter(kind='stream').count())",
        )

    assert done.returncode == 0, done.stderr[-4000:]
    assert sessions.strip().splitlines()[-1] == "1", f"stream jobs: {sessions}"
    run = json.loads(done.stdout.strip().splitlines()[-1])
    events = run["events"]
    kinds = [kind.rsplit(".", 1)[-1] for _, kind, _ in events]
    finals = [
        event[2] for event, kind in zip(events, kinds, strict=True) if kind == "FINAL_TRANSCRIPT"
    ]
    said = " ".join(finals).lower()
    assert run["outside"] == [], "the plugin tried to reach a host off this machine"
    assert "START_OF_SPEECH" in kinds and "INTERIM_TRANSCRIPT" in kinds, kinds
    assert "END_OF_SPEECH" in kinds, kinds
    assert "country" in said and "fellow" in said, finals
    # The flush (Finalize) half-way is answered with a final, and the session goes on:
    # finals come after it too.
    flushed = kinds.index("flush")
    assert "FINAL_TRANSCRIPT" in kinds[flushed:], kinds
    assert any(k == "FINAL_TRANSCRIPT" for k in kinds[:flushed]), kinds
