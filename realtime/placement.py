"""Which realtime worker takes a new live session, when there are several.

Every realtime worker advertises its free session slots in Redis, renewed every
ADVERTISE_S and at once when a session comes or goes; an advert lives ADVERT_TTL_S unless
renewed, so a worker that dies (or whose event loop stops) drops out within that. A
consumer sends ``session.open`` to the advertised worker with the most room (a tie: one
at random) on that worker's own channel. A worker that is full passes the open on to the
advertised worker with the most room that has not had it yet (the message lists the
workers tried), and the last one refuses: 4429 only when every live worker has said it is
full. Consumers also watch their worker's advert: once it is gone, the client is told
(4500) within about ADVERT_TTL_S. docs/streaming.md, "Realtime workers in the plural".

Without REDIS_URL (the embedded defaults: one worker, inside the web process) nothing is
advertised and ``session.open`` goes to the shared channel, as it also does while no
worker is advertised (every worker is still warming up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import redis.asyncio
from channels.exceptions import ChannelFull
from django.conf import settings
from redis.exceptions import RedisError

from scribe.processes import this_host

logger = logging.getLogger(__name__)

ADVERTISE_S = 0.25  # a worker renews its advert this often
ADVERT_TTL_S = 2.0  # an advert not renewed for this long is gone: its worker is dead
SNAPSHOT_S = 0.2  # the consumers of one process share one read of the adverts this fresh
REDIS_TIMEOUT_S = 1.0  # a read that takes longer counts as "unknown", not "gone"
REDIS_ERRORS = (RedisError, OSError)

# Read every advert and forget the workers whose advert expired, in one atomic step: a
# worker renewing its advert meanwhile cannot be dropped from the index by mistake.
READ_ADVERTS = """
local adverts = {}
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local advert = redis.call('GET', ARGV[1] .. channel)
  if advert then
    table.insert(adverts, advert)
  else
    redis.call('SREM', KEYS[1], channel)
  end
end
return adverts
"""


@dataclass(frozen=True)
class Advert:
    """A live realtime worker: the channel it reads, and its free and total slots."""

    channel: str
    free: int
    cap: int
    host: str
    pid: int


def enabled() -> bool:
    """Whether workers advertise: a deployment on Redis (the production topology)."""
    return bool(settings.REDIS_URL)


def _index_key() -> str:
    return f"{settings.SCRIBE_DEPLOYMENT}:realtime:workers"


def _advert_prefix() -> str:
    return f"{settings.SCRIBE_DEPLOYMENT}:realtime:worker:"


class _Registry:
    """One event loop's client and its last read (redis.asyncio clients are per loop)."""

    def __init__(self) -> None:
        self.client = redis.asyncio.Redis.from_url(
            str(settings.REDIS_URL),
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self.read_script = self.client.register_script(READ_ADVERTS)
        self.lock = asyncio.Lock()
        self.read_at = float("-inf")
        self.adverts: list[Advert] | None = None
        self.failing = False


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = (
    weakref.WeakKeyDictionary()
)


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = _Registry()
    return registry


async def adverts(*, fresh: bool = False) -> list[Advert] | None:
    """The live workers' adverts, at most SNAPSHOT_S old unless ``fresh``; None when
    nothing is advertised here (no Redis) or Redis cannot be read now (unknown)."""
    if not enabled():
        return None
    registry = _registry()
    async with registry.lock:
        if fresh or time.monotonic() - registry.read_at > SNAPSHOT_S:
            try:
                raw = await registry.read_script(keys=[_index_key()], args=[_advert_prefix()])
                registry.adverts = [Advert(**json.loads(advert)) for advert in raw]
                registry.failing = False
            except REDIS_ERRORS as exc:  # said once per outage
                if not registry.failing:
                    logger.warning("could not read the realtime workers' adverts: %s", exc)
                registry.failing = True
                registry.adverts = None
            registry.read_at = time.monotonic()
        return registry.adverts


def ranked(workers: Iterable[Advert], *, exclude: Iterable[str] = ()) -> list[Advert]:
    """``workers`` not in ``exclude``, the most free slots first; ties in random order, so
    consumers reading the same adverts at once spread over equal workers."""
    skip = set(exclude)
    candidates = [worker for worker in workers if worker.channel not in skip]
    random.shuffle(candidates)
    return sorted(candidates, key=lambda worker: -worker.free)  # stable: ties stay shuffled


async def advertise(advert: Advert) -> None:
    client = _registry().client
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(
            _advert_prefix() + advert.channel,
            json.dumps(asdict(advert)),
            px=int(ADVERT_TTL_S * 1000),
        )
        pipe.sadd(_index_key(), advert.channel)
        await pipe.execute()


async def withdraw(channel: str) -> None:
    client = _registry().client
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(_advert_prefix() + channel)
        pipe.srem(_index_key(), channel)
        await pipe.execute()


async def keep_advertised(
    channel: str, room: Callable[[], tuple[int, int] | None], changed: asyncio.Event
) -> None:
    """A worker's advert, for as long as it runs: ``room()`` is its (free, cap), or None
    while it warms up (not advertised: sessions go to workers that are ready). Renewed
    every ADVERTISE_S, and at once when ``changed`` is set; withdrawn when cancelled."""
    failing = False
    try:
        while True:
            changed.clear()
            slots = room()
            if slots is not None:
                try:
                    await advertise(Advert(channel, *slots, host=this_host(), pid=os.getpid()))
                    failing = False
                except REDIS_ERRORS as exc:  # renewed once Redis answers; said once
                    if not failing:
                        logger.warning("could not advertise this realtime worker: %s", exc)
                    failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), ADVERTISE_S)
    finally:
        with contextlib.suppress(Exception):  # its advert expires by itself anyway
            await withdraw(channel)


async def pass_on(channel_layer, message: dict, *, me: str) -> int | None:
    """A full worker's part: send a ``session.open`` on to the advertised worker with the
    most room that has not had it yet. None once it is passed on; else how many workers
    said they were full (every live one), and the session is refused."""
    tried = [*message.get("tried", []), me]
    for worker in ranked(await adverts(fresh=True) or [], exclude=tried):
        try:
            await channel_layer.send(worker.channel, {**message, "tried": tried})
            return None
        except ChannelFull:  # that worker is far behind: as good as full
            tried.append(worker.channel)
    return len(tried)


def refusal(limit: int, *, workers: int) -> dict:
    """The ``stream.refused`` answer when ``workers`` live workers (each at most ``limit``
    sessions) are all full: the client is closed with 4429."""
    if workers > 1:
        text = (
            f"Every realtime worker ({workers}) already serves as many sessions as it can "
            "transcribe in real time (SCRIBE_REALTIME_MAX_SESSIONS). Retry later or add a worker."
        )
    else:
        text = (
            f"This realtime worker already serves {limit} sessions, as many as it can "
            "transcribe in real time (SCRIBE_REALTIME_MAX_SESSIONS). Retry later or add a worker."
        )
    return {"type": "stream.refused", "code": "session_limit", "message": text}
