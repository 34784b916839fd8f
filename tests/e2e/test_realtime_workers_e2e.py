"""Two `runworker realtime` processes behind one daphne on PostgreSQL + Redis, a session
cap of 1 each: sessions go wherever there is room, 4429 only when both are full, and a
SIGKILLed worker's client is told within 3 s while new sessions go to the survivor."""

from __future__ import annotations

import asyncio
import os

import pytest

from realtime.client import stream_file
from tests.conftest import require_service, shared_clip
from tests.e2e.realtime_workers import (
    adverts,
    feed,
    kill_and_time,
    open_session,
    pooled_stack,
    wait_for_adverts,
    workers,
)
from transcription.engine.audio import decode_all

pytestmark = pytest.mark.e2e

TELL_WITHIN_S = 3.0


@pytest.fixture
def stack(tmp_path, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    redis_db = os.getpid() % 15 + 1
    with pooled_stack(
        tmp_path, model_dir, redis_db=redis_db, SCRIBE_REALTIME_MAX_SESSIONS="1"
    ) as running:
        yield running


def test_sessions_fill_every_worker_and_a_killed_workers_client_is_told_within_3_s(stack):
    url = f"ws://127.0.0.1:{stack.port}/v1/stream"
    wait_for_adverts(stack, 2, free=1)

    async def scenario():
        first = await open_session(url, stack.key)
        second = await open_session(url, stack.key)
        both_full = wait_for_adverts(stack, 2, free=0, timeout_s=5)
        third = await open_session(url, stack.key)
        third_end = await third.ended()
        speech = decode_all(shared_clip("jfk.flac"))
        feeds = [asyncio.ensure_future(feed(live, speech)) for live in (first, second)]
        await asyncio.sleep(3)  # both workers decoding when one is killed
        told_s, on_killed, error, code = await kill_and_time(workers(stack)[0], [first, second])
        for task in feeds:
            task.cancel()
        survivor = second if on_killed is first else first
        # The survivor is full and the dead worker no longer counts: refused, not 4503.
        fourth = await open_session(url, stack.key)
        fourth_end = await fourth.ended()
        survivor_end = await survivor.stop()
        after = await stream_file(url, stack.key, shared_clip("jfk.flac"), speed=4.0)
        return {
            "firsts": [first.first["type"], second.first["type"]],
            "both_full": both_full,
            "third": (third.first, third_end[2]),
            "told_s": told_s,
            "told": (error, code),
            "fourth": (fourth.first, fourth_end[2]),
            "survivor_end": survivor_end,
            "after": after,
            "left": adverts(stack),
        }

    seen = asyncio.run(scenario())

    assert seen["firsts"] == ["ready", "ready"]
    assert [a["free"] for a in seen["both_full"]] == [0, 0], "one session on each worker"
    refused, code = seen["third"]
    assert (refused["code"], code) == ("session_limit", 4429)
    assert "Every realtime worker (2)" in refused["message"]
    error, code = seen["told"]
    assert (error["code"] if error else None, code) == ("worker_lost", 4500)
    assert seen["told_s"] <= TELL_WITHIN_S, f"told {seen['told_s']:.2f} s after the kill"
    refused, code = seen["fourth"]
    assert (refused["code"], code) == ("session_limit", 4429)
    assert seen["survivor_end"] == (None, 1000), "the other worker's session went on"
    after = seen["after"]
    assert after.events[0]["type"] == "ready" and after.events[-1]["type"] == "closed"
    assert after.close_code == 1000 and not after.errors
    assert len(seen["left"]) == 1, "only the survivor is advertised"
