"""The web process: daphne serving scribe's ASGI app, as `serve`, compose and the images
start it.

daphne drops a WebSocket connection whose frame or message is over its own ceiling (1 MiB
unless told), before the application sees it: no close code, no reason. The live lane has
its own limit (``realtime.consumers.MAX_FRAME_BYTES``), answered with an ``error`` event
naming it and close code 4413; daphne's ceiling sits above that limit so scribe's answer is
the one a client gets, and stays bounded so one frame cannot take the memory.
"""

from __future__ import annotations

WEBSOCKET_CEILING_BYTES = 16 * 1024 * 1024
ASGI_APPLICATION = "scribe.asgi:application"


def daphne_arguments(bind: str, port: int) -> list[str]:
    """daphne's arguments (after ``daphne`` or ``python -m daphne``) to serve on ``bind``."""
    return [
        "-b",
        bind,
        "-p",
        str(port),
        "--websocket-max-message-size",
        str(WEBSOCKET_CEILING_BYTES),
        "--websocket-max-frame-size",
        str(WEBSOCKET_CEILING_BYTES),
        ASGI_APPLICATION,
    ]
