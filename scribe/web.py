"""The web process: daphne serving scribe's ASGI app, as `serve`, compose and the images
start it.

daphne drops a WebSocket connection whose frame or message is over its own ceiling (1 MiB
unless told), before the application sees it: no close code, no reason. The live lane has
its own limit (``realtime.consumers.MAX_FRAME_BYTES``), answered with an ``error`` event
naming it and close code 4413; daphne's ceiling sits above that limit so scribe's answer is
the one a client gets, and stays bounded so one frame cannot take the memory.

daphne likewise drops a WebSocket handshake the application has not answered within 5 s
(its ``--websocket_connect_timeout``), with no HTTP answer at all. The live lane waits up to
``realtime.worker.OPEN_TIMEOUT_S`` (10 s) for a realtime worker to take a session before it
refuses the client with ``no_worker`` and close code 4503, so daphne waits longer than that.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async

WEBSOCKET_CEILING_BYTES = 16 * 1024 * 1024
WEBSOCKET_CONNECT_TIMEOUT_S = 15
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
        "--websocket_connect_timeout",
        str(WEBSOCKET_CONNECT_TIMEOUT_S),
        ASGI_APPLICATION,
    ]


async def sent_as_read(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Yield ``chunks`` to a ``StreamingHttpResponse``, each read in a pool thread.

    Under ASGI, Django reads a synchronous iterator whole into memory before it sends any
    of it (``StreamingHttpResponse.__aiter__``); an asynchronous one is sent a chunk at a
    time, so a large file costs the web process one chunk, not the file.
    """

    def read() -> bytes | None:
        return next(chunks, None)

    try:
        while (chunk := await sync_to_async(read, thread_sensitive=False)()) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)  # a generator's: closes what it opened
        # After a disconnect the read in flight may still run in its thread ("generator
        # already executing"): the generator is then closed when it is dropped after it.
        if close is not None:
            with contextlib.suppress(ValueError):
                await sync_to_async(close, thread_sensitive=False)()
