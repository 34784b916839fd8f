"""ASGI entry point: HTTP (Django, behind the upload size guard) and WebSocket streaming,
plus the realtime worker's channel for `manage.py runworker realtime`."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scribe.settings")
django_app = get_asgi_application()

# Imported after Django is set up: they use models and settings.
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from accounts.websocket import APIKeyWebSocketMiddleware  # noqa: E402
from deepgram_compat.routing import websocket_urlpatterns as deepgram_websocket  # noqa: E402
from realtime.routing import channel_routes, websocket_urlpatterns  # noqa: E402
from scribe import daphne_http  # noqa: E402
from scribe.upload_guard import UploadSizeGuard  # noqa: E402
from scribe.websocket import UnknownPathConsumer  # noqa: E402

# daphne (in this process when it serves this app) answers in the envelope, parses no form.
daphne_http.install()

# Any other path: refused (403), not Channels' "No route found" (500).
websocket_routes = [
    *websocket_urlpatterns,
    *deepgram_websocket,
    re_path(r"", UnknownPathConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": UploadSizeGuard(django_app),
        "websocket": APIKeyWebSocketMiddleware(URLRouter(websocket_routes)),
        "channel": ChannelNameRouter(channel_routes),
    }
)
