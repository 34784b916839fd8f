"""Deepgram's official SDK against /v1/listen (WebSocket) on the production topology:
daphne + ``runworker realtime`` on Redis, as /v1/stream's e2e tests run it."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
import websockets
from deepgram.core.api_error import ApiError

from deepgram_compat.audio import TABLES
from tests.conftest import shared_clip
from tests.e2e.deepgram_client import loopback_only, play, sdk_client
from tests.e2e.test_stream_e2e import live_stack
from transcription.engine.audio import decode_all
from transcription.engine.testmodel import build_test_model

pytestmark = pytest.mark.e2e

# What LiveKit Agents' and Pipecat's Deepgram plugins send besides the audio's format.
FRAMEWORK_QUERY = {
    "model": "nova-3",
    "language": "en-US",
    "encoding": "linear16",
    "sample_rate": 16000,
    "channels": 1,
    "interim_results": "true",
    "punctuate": "true",
    "smart_format": "true",
    "endpointing": 300,
    "utterance_end_ms": 1000,
    "vad_events": "true",
    "numerals": "true",
    "profanity_filter": "false",
    "mip_opt_out": "true",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_dir):
    # The realtime lane on the random-weight model at tiny.en's size: unlike the micro one
    # it writes words steadily, so a session has interims and several finals.
    tiny = build_test_model(tmp_path_factory.mktemp("models") / "tiny", size="tiny")
    tmp = tmp_path_factory.mktemp("deepgram_live")
    with live_stack(
        tmp, model_dir, SCRIBE_REALTIME_MODEL=str(tiny), SCRIBE_REALTIME_MAX_SESSIONS="2"
    ) as running:
        yield running


def test_the_sdk_streams_with_interims_finalize_and_close_stream(stack):
    audio = decode_all(shared_clip("jfk.flac"))
    # Parameters the SDK has no argument for go as extra query parameters (LiveKit's do).
    extra = {"filler_words": "true", "no_delay": "true", "zz": "1"}
    query = {**FRAMEWORK_QUERY, "request_options": {"additional_query_parameters": extra}}

    with loopback_only() as asked:
        run = asyncio.run(play(stack.port, stack.key, audio, at={4.0: "Finalize"}, **query))

    assert set(asked) <= {"127.0.0.1"}, asked
    interims = [m for m in run.results if not m.is_final]
    assert interims, "interim results came while speech went on"
    flushed = [m for m in run.results if m.from_finalize]
    assert len(flushed) == 1 and flushed[0].is_final, "one answer to the one Finalize"
    after = run.received.index(next(e for e in run.received if e[1] is flushed[0]))
    assert any(m.type == "Results" for _, m in run.received[after + 1 :]), "the session went on"
    kinds = [m.type for _, m in run.received]
    assert kinds[-1] == "Metadata" and kinds.count("Metadata") == 1, kinds
    metadata = run.of_type("Metadata")[0]
    assert metadata.duration == pytest.approx(audio.shape[0] / 16000, abs=0.06)
    # Every parameter scribe does not implement is accepted and named once, as ignored.
    assert metadata.ignored_parameters == [
        "filler_words",
        "mip_opt_out",
        "no_delay",
        "numerals",
        "profanity_filter",
        "zz",
    ]
    assert metadata.model_info[metadata.models[0]]["arch"] == "whisper"
    said = [m for m in run.finals if m.channel.alternatives[0].transcript]
    assert said and all(m.channel.alternatives[0].words for m in said)
    assert {m.metadata.request_id for m in run.results} == {metadata.request_id}
    assert all(m.channel_index == [0, 1] for m in run.results)
    # The session is a stream job like /v1/stream's: stored and downloadable.
    with stack.client() as client:
        job = client.get(f"/v1/jobs/{metadata.request_id}").json()
        text = client.get(f"/v1/jobs/{metadata.request_id}/result?format=txt").text
    assert job["status"] == "completed"
    assert " ".join(text.split()) == " ".join(run.transcript().split())


def test_keepalive_holds_a_silent_session_and_silence_alone_closes_it(stack):
    async def keepalives_in_a_gap():
        """12 s without audio, a KeepAlive every 3 s, then audio and CloseStream."""
        received = []
        async with sdk_client(stack.port, stack.key).listen.v1.connect(**FRAMEWORK_QUERY) as ws:
            for _ in range(4):
                await asyncio.sleep(3.0)
                await ws.send_keep_alive()
            await ws.send_media(bytes(3200))
            await ws.send_close_stream()
            received = [message async for message in ws]
        return received

    async def silence():
        """Nothing at all: Deepgram closes after 10 s; so does scribe."""
        received = []
        async with sdk_client(stack.port, stack.key).listen.v1.connect(**FRAMEWORK_QUERY) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):  # a close other than 1000
                async for message in ws:
                    received.append(message)
            return received, ws._websocket.close_code

    async def both():
        return await asyncio.gather(keepalives_in_a_gap(), silence())

    gap, (silent, code) = asyncio.run(both())

    assert [m.type for m in gap][-1] == "Metadata", "KeepAlive held the session 12 s"
    assert [m.type for m in silent] == ["Error"] and code == 4011
    assert "KeepAlive" in silent[0].description


def test_multichannel_transcribes_each_channel_apart_each_counted_against_the_cap(stack):
    speech = decode_all(shared_clip("jfk.flac"))[: 5 * 16000]
    stereo = np.stack([np.zeros_like(speech), speech], axis=1)  # speech on the second only
    query = {**FRAMEWORK_QUERY, "channels": 2, "multichannel": "true"}

    async def refused(after_s: float, **asked):
        """The messages and close code of a session that the cap refuses."""
        await asyncio.sleep(after_s)
        async with sdk_client(stack.port, stack.key).listen.v1.connect(**asked) as ws:
            received = []
            with contextlib.suppress(websockets.ConnectionClosed):
                async for message in ws:
                    received.append(message)
            return [m.type for m in received], ws._websocket.close_code

    async def both():
        # One channel more while the two fill the cap of 2.
        return await asyncio.gather(
            play(stack.port, stack.key, stereo, speed=2.0, **query),
            refused(1.0, **FRAMEWORK_QUERY),
        )

    run, one_more = asyncio.run(both())
    three = asyncio.run(refused(0.0, **{**query, "channels": 3}))

    by_channel: dict[tuple, list] = {}
    for result in run.results:
        by_channel.setdefault(tuple(result.channel_index), []).append(result)
    assert set(by_channel) <= {(0, 2), (1, 2)}, by_channel.keys()
    assert any(r.channel.alternatives[0].words for r in by_channel[(1, 2)])
    assert not any(r.channel.alternatives[0].words for r in by_channel.get((0, 2), []))
    metadata = run.of_type("Metadata")
    assert len(metadata) == 1 and metadata[0].channels == 2
    assert one_more == three == (["Error"], 4429), "each channel counts against the cap"


def test_a_bad_key_is_the_sdks_api_error_403(stack):
    async def connect():
        with pytest.raises(ApiError) as raised:
            await play(
                stack.port, "sk_not_a_key", decode_all(shared_clip("jfk.flac")), model="base"
            )
        return raised.value

    error = asyncio.run(connect())

    assert error.status_code == 403


def test_telephony_mulaw_at_8_khz_is_transcribed(stack):
    audio = decode_all(shared_clip("jfk.flac"))
    narrow = audio[: audio.shape[0] // 2 * 2].reshape(-1, 2).mean(axis=1)  # 8 kHz
    samples = (np.clip(narrow, -1, 1) * 32767).astype(np.int16)
    # μ-law by the decoder's own table: the code whose value is nearest each sample.
    table = TABLES["mulaw"].astype(np.int32)
    order = np.argsort(table)
    index = np.clip(np.searchsorted(table[order], samples), 1, len(order) - 1)
    nearer = np.abs(table[order][index - 1] - samples) < np.abs(table[order][index] - samples)
    encoded = order[index - nearer].astype(np.uint8).tobytes()

    async def telephone():
        query = {**FRAMEWORK_QUERY, "encoding": "mulaw", "sample_rate": 8000}
        async with sdk_client(stack.port, stack.key).listen.v1.connect(**query) as ws:
            for start in range(0, len(encoded), 400):  # 50 ms frames
                await ws.send_media(encoded[start : start + 400])
                await asyncio.sleep(0.0125)  # 4 × real time
            await ws.send_close_stream()
            return [message async for message in ws]

    received = asyncio.run(telephone())

    metadata = received[-1]
    assert metadata.type == "Metadata"
    assert metadata.duration == pytest.approx(narrow.shape[0] / 8000, abs=0.06)
    assert any(m.type == "Results" and m.channel.alternatives[0].words for m in received)
