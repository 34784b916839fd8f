"""``manage.py runworker realtime``: Channels' ``runworker``, whose realtime worker starts
at once instead of on its first message (``realtime.channel_worker``). It replaces
Channels' command because this app comes before ``channels`` in INSTALLED_APPS."""

from __future__ import annotations

from channels.management.commands.runworker import Command as ChannelsRunworker

from realtime.channel_worker import RealtimeChannelWorker


class Command(ChannelsRunworker):
    worker_class = RealtimeChannelWorker
