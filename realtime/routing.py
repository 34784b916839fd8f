from django.conf import settings
from django.urls import path

from realtime.consumers import StreamConsumer
from realtime.worker import RealtimeWorker

websocket_urlpatterns = [path("v1/stream", StreamConsumer.as_asgi())]

# `manage.py runworker realtime` serves this channel.
channel_routes = {settings.SCRIBE_REALTIME_CHANNEL: RealtimeWorker.as_asgi()}
