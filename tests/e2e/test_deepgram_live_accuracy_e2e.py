"""/v1/listen is as accurate as /v1/stream: the same 41 s of real speech, the real tiny.en
on 2 CPU threads, daphne + the realtime worker on Redis, each protocol at real time."""

from __future__ import annotations

import asyncio

import pytest

from glossary.metrics import wer
from realtime.client import stream_file
from tests.conftest import SHARED_AUDIO
from tests.e2e.deepgram_client import play
from tests.e2e.test_stream_e2e import live_stack
from tests.realmodel import LIVE_REFERENCE, live_source
from transcription.engine.audio import decode_all

pytestmark = [pytest.mark.e2e, pytest.mark.real_model, pytest.mark.shared_audio]


def test_listen_is_within_two_points_of_stream_on_the_real_model(tmp_path, real_model_dir):
    if not (SHARED_AUDIO / "multilingual.mp3").is_file():
        pytest.skip("../shared/audio is absent")
    source = live_source(tmp_path / "live.wav")
    env = {
        "SCRIBE_REALTIME_MODEL": str(real_model_dir),
        "SCRIBE_CPU_THREADS": "2",
        "SCRIBE_REALTIME_MAX_SESSIONS": "2",
    }

    async def side_by_side(port: int, key: str):
        """Both at once, so both see the same load on the machine (their steps are decoded
        in one batch): a fair comparison on shared cores."""
        url = f"ws://127.0.0.1:{port}/v1/stream"
        return await asyncio.gather(
            stream_file(url, key, source, options={"language": "en"}),
            play(
                port,
                key,
                decode_all(source),
                model="nova-3",
                language="en-US",
                encoding="linear16",
                sample_rate=16000,
                interim_results="true",
                smart_format="true",
                endpointing=300,
            ),
        )

    with live_stack(tmp_path, real_model_dir, **env) as stack:
        stream, listen = asyncio.run(side_by_side(stack.port, stack.key))

    stream_text = " ".join(final["text"] for final in stream.finals)
    stream_wer, listen_wer = (
        wer(LIVE_REFERENCE, stream_text),
        wer(LIVE_REFERENCE, listen.transcript()),
    )
    assert listen_wer <= stream_wer + 0.02, (
        f"/v1/listen {listen_wer:.3f} vs /v1/stream {stream_wer:.3f}: {listen.transcript()}"
    )
