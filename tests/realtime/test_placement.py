"""Realtime workers in the plural, in one process: two workers on a Redis channel layer
advertise their free slots, a full worker passes a session on to one with room, and the
last one refuses, naming how many said they were full (docs/streaming.md)."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid

import pytest
from channels.layers import get_channel_layer
from channels.routing import ChannelNameRouter

from realtime import placement
from realtime.channel_worker import RealtimeChannelWorker
from realtime.worker import RealtimeWorker, warm_up
from tests.conftest import require_service

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def pool_settings(job_settings, model_dir):
    require_service("127.0.0.1", 6379, "Redis")
    deployment = f"test-placement-{uuid.uuid4().hex[:8]}"
    job_settings.SCRIBE_REALTIME_MODEL = str(model_dir)
    job_settings.SCRIBE_REALTIME_IN_PROCESS = False
    job_settings.SCRIBE_REALTIME_MAX_SESSIONS = 1
    job_settings.REDIS_URL = REDIS_URL
    job_settings.SCRIBE_DEPLOYMENT = deployment
    job_settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": deployment},
        }
    }
    warm_up()  # the model every worker of this process shares, measured once
    return job_settings


async def start_workers(count: int) -> list[asyncio.Task]:
    layer = get_channel_layer()
    app = ChannelNameRouter({"realtime": RealtimeWorker.as_asgi()})
    return [
        asyncio.ensure_future(RealtimeChannelWorker(app, ["realtime"], layer).handle())
        for _ in range(count)
    ]


async def stop_workers(tasks: list[asyncio.Task]) -> None:
    """Stop this loop's workers as a process exit would, without their sessions being
    "lost" to a failure as the loop closes under them."""
    loop = asyncio.get_running_loop()
    for obj in gc.get_objects():
        if isinstance(obj, RealtimeWorker) and any(t.get_loop() is loop for t in obj.tasks):
            background, obj.tasks = obj.tasks, []
            for task in background:
                task.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.sleep(0.1)  # the adverts are withdrawn


async def advertised(count: int, timeout_s: float = 10) -> list[placement.Advert]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = await placement.adverts(fresh=True) or []
        if len(workers) == count:
            return sorted(workers, key=lambda worker: worker.channel)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} workers never advertised")


async def ask(channel: str) -> dict:
    """Send a session.open straight to ``channel``, as a consumer does; the answer."""
    layer = get_channel_layer()
    reply = await layer.new_channel()
    await layer.send(
        channel,
        {
            "type": "session.open",
            "session_id": uuid.uuid4().hex,
            "reply_channel": reply,
            "owner_id": 1,
            "sent_at": time.time(),
            "tried": [],
        },
    )
    return await asyncio.wait_for(layer.receive(reply), timeout=10)


def test_a_full_worker_passes_the_session_on_and_the_last_one_refuses(pool_settings):
    async def scenario():
        tasks = await start_workers(2)
        try:
            before = await advertised(2)
            full = before[0].channel
            answers = [await ask(full) for _ in range(3)]
            await asyncio.sleep(placement.ADVERTISE_S * 2)
            after = await advertised(2)
        finally:
            await stop_workers(tasks)
        return before, answers, after

    before, answers, after = asyncio.run(scenario())

    assert [(w.free, w.cap) for w in before] == [(1, 1), (1, 1)]
    first, passed_on, refused = answers
    assert (first["type"], first.get("worker_channel")) == ("stream.opened", before[0].channel)
    assert (passed_on["type"], passed_on.get("worker_channel")) == (
        "stream.opened",
        before[1].channel,
    ), "the full worker passed the session on to the one with room"
    assert refused["type"] == "stream.refused" and refused["code"] == "session_limit"
    assert refused["message"].startswith("Every realtime worker (2) already serves")
    assert [w.free for w in after] == [0, 0]


def test_one_worker_alone_refuses_as_it_always_did(pool_settings):
    async def scenario():
        tasks = await start_workers(1)
        try:
            (worker,) = await advertised(1)
            return [await ask(worker.channel) for _ in range(2)]
        finally:
            await stop_workers(tasks)

    opened, refused = asyncio.run(scenario())

    assert opened["type"] == "stream.opened"
    assert refused["type"] == "stream.refused"
    assert refused["message"].startswith("This realtime worker already serves 1 sessions")
