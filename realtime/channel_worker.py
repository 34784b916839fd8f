"""The Channels worker that runs the realtime worker: out of process (``manage.py runworker
realtime``, whose command this app's ``runworker`` replaces) and inside the web process on
the embedded defaults (``ensure_local_worker``).

Channels' own worker creates a consumer on the first message its channel receives; this
one starts the realtime worker at once (a ``worker.start`` message), so that it advertises
its free slots from the start (``realtime.placement``) and is offered sessions on its own
channel rather than waiting for one on the shared channel.
"""

from __future__ import annotations

import asyncio

from channels.routing import ChannelNameRouter
from channels.worker import Worker
from django.conf import settings

from realtime.worker import RealtimeWorker


class RealtimeChannelWorker(Worker):
    async def handle(self) -> None:
        for channel in self.channels:
            if channel == settings.SCRIBE_REALTIME_CHANNEL:
                # The scope and id Channels' listener gives this channel's consumer.
                scope = {"type": "channel", "channel": channel}
                queue = self.get_or_create_application_instance(channel, scope)
                queue.put_nowait({"type": "worker.start"})
        await super().handle()


_local_workers: dict[int, asyncio.Task] = {}


def ensure_local_worker(channel_layer) -> None:
    """With the in-memory layer, run the worker inside this (web) process, once per loop."""
    loop = asyncio.get_running_loop()
    task = _local_workers.get(id(loop))
    if task is not None and not task.done():
        return
    app = ChannelNameRouter({settings.SCRIBE_REALTIME_CHANNEL: RealtimeWorker.as_asgi()})
    worker = RealtimeChannelWorker(app, [settings.SCRIBE_REALTIME_CHANNEL], channel_layer)
    _local_workers[id(loop)] = asyncio.ensure_future(worker.handle())
