"""/v1/stream when something under it fails: the channel layer's Redis going away, a
client vanishing without a ``stop``, a session opened after its client gave up.

Found by benchmarks/soak.py (docs/benchmarks.md, "Soak with faults"). Redis is reached
through a loopback TCP proxy the test cuts, as a Redis restart cuts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from realtime.models import StreamSegment
from tests.conftest import require_service, shared_clip
from tests.e2e.stack import free_port
from tests.realtime.test_stream_consumer import (
    communicator,
    receive_until,
    refusal,
    stream_audio,
)
from transcription.engine.audio import decode_all
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


class RedisProxy:
    """A loopback TCP proxy to the loopback Redis; ``cut()`` drops every connection and
    refuses new ones, as a Redis restart does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.writers += [writer, upstream_writer]

        async def pipe(source, sink) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()


def redis_layer(port: int) -> dict:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [f"redis://127.0.0.1:{port}/0"],
                "prefix": f"test-faults-{uuid.uuid4().hex[:8]}",
            },
        }
    }


@pytest.fixture
def key(stream_settings):
    from accounts.services import api_key_create

    return api_key_create(owner_name="meetings", scopes=["stream"])[1]


@pytest.fixture
def stream_settings(job_settings, model_dir):
    job_settings.SCRIBE_REALTIME_MODEL = str(model_dir)
    job_settings.SCRIBE_REALTIME_IN_PROCESS = True
    return job_settings


def test_a_handshake_while_redis_is_down_is_refused_with_4503_not_an_http_500(key, stream_settings):
    # Nothing listens on this port: the channel layer cannot reach its Redis.
    stream_settings.CHANNEL_LAYERS = redis_layer(free_port())
    stream_settings.SCRIBE_REALTIME_IN_PROCESS = False

    error, closed = asyncio.run(refusal(communicator(key)))

    assert error["type"] == "error" and error["code"] == "no_worker"
    assert "channel layer is unavailable" in error["message"]
    assert closed == {"type": "websocket.close", "code": 4503}


def test_a_session_whose_redis_goes_away_is_told_worker_lost_and_closed_4500(key, stream_settings):
    require_service("127.0.0.1", 6379, "Redis")
    proxy = RedisProxy()
    stream_settings.CHANNEL_LAYERS = redis_layer(proxy.port)
    speech = decode_all(shared_clip("jfk.flac"))[: 2 * 16000]

    async def scenario():
        await proxy.start()
        comm = communicator(key)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"language": "en"}})
        await receive_until(comm, "ready")
        await stream_audio(comm, speech)
        await proxy.cut()
        with contextlib.suppress(Exception):
            await comm.send_to(bytes_data=b"\0\0" * 1600)  # a frame the worker cannot get
        events = await receive_until(comm, "error", timeout=30)
        return events[-1], await comm.receive_output(timeout=10)

    error, closed = asyncio.run(scenario())

    assert error["code"] == "worker_lost"
    assert "channel layer is unavailable" in error["message"]
    assert closed == {"type": "websocket.close", "code": 4500}


def test_a_session_whose_client_vanished_is_stopped_its_finals_kept_and_its_slot_freed(
    key, stream_settings, monkeypatch
):
    """The web process died (its consumer ended without a ``stop``): the worker no longer
    hears from the session, stops it as its consumer would have, and admits another."""
    stream_settings.SCRIBE_REALTIME_MAX_SESSIONS = 1
    monkeypatch.setattr("realtime.worker.CONSUMER_SILENCE_S", 1.0)
    speech = decode_all(shared_clip("jfk.flac"))

    async def scenario():
        gone = communicator(key)
        assert (await gone.connect())[0]
        await gone.send_json_to({"type": "start", "options": {"language": "en"}})
        ready = (await receive_until(gone, "ready"))[-1]
        await stream_audio(gone, speech)
        gone.future.cancel()  # no disconnect handler runs: no stop reaches the worker
        with contextlib.suppress(asyncio.CancelledError):
            await gone.future
        deadline = time.monotonic() + 30
        job = await database_sync_to_async(Job.objects.get)(pk=ready["job_id"])
        while job.status == "processing" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            job = await database_sync_to_async(Job.objects.get)(pk=ready["job_id"])
        finals = await database_sync_to_async(StreamSegment.objects.filter(job=job).count)()
        after = communicator(key)
        assert (await after.connect())[0]
        await after.send_json_to({"type": "start", "options": {"language": "en"}})
        admitted = json.loads(await after.receive_from(timeout=30))
        await after.disconnect()
        return job, finals, admitted

    job, finals, admitted = asyncio.run(scenario())

    # Stopped, not lost: completed as its consumer's stop would have completed it, its
    # result built from the finals it stored.
    assert (job.status, job.error_code) == ("completed", "")
    assert job.result_path
    assert StreamSegment.objects.filter(job=job).count() == finals
    assert admitted["type"] == "ready", admitted


def test_a_session_opened_after_its_client_gave_up_takes_no_slot(key, stream_settings):
    """A worker that starts (or reads its queue) after a consumer refused its client with
    4503 must not open that session: it would hold the only slot for nobody."""
    stream_settings.SCRIBE_REALTIME_MAX_SESSIONS = 1

    async def scenario():
        layer = get_channel_layer()
        await layer.send(
            stream_settings.SCRIBE_REALTIME_CHANNEL,
            {
                "type": "session.open",
                "session_id": uuid.uuid4().hex,
                "reply_channel": await layer.new_channel(),
                "owner_id": 1,
                "sent_at": time.time() - 60,
            },
        )
        comm = communicator(key)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"language": "en"}})
        event = json.loads(await comm.receive_from(timeout=30))
        await comm.disconnect()
        return event

    event = asyncio.run(scenario())

    assert event["type"] == "ready", event
