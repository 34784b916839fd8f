"""A WebSocket handshake to a path scribe does not serve is refused (403), in-process and
against a real daphne over a socket: not the 500 of Channels' "No route found"."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from channels.testing import WebsocketCommunicator

from accounts.services import api_key_create
from tests.e2e.stack import daphne_on_sqlite


async def handshake_status(url: str) -> int:
    """The HTTP status daphne answers a plain WebSocket handshake with (101: accepted)."""
    try:
        async with websockets.connect(url, open_timeout=10):
            return 101
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


def test_a_handshake_to_an_unknown_path_is_refused_by_daphne_with_403(tmp_path):
    with daphne_on_sqlite(tmp_path) as port:
        unknown = asyncio.run(handshake_status(f"ws://127.0.0.1:{port}/v1/nothing"))
        listen = asyncio.run(handshake_status(f"ws://127.0.0.1:{port}/v1/listen?api_key=x"))
        root = asyncio.run(handshake_status(f"ws://127.0.0.1:{port}/"))
        served = asyncio.run(handshake_status(f"ws://127.0.0.1:{port}/v1/stream"))
        log = (tmp_path / "daphne.log").read_text()

    assert (unknown, listen, root) == (403, 403, 403)
    assert served == 101  # the stream accepts, then tells a caller without a key what to do
    assert "No route found" not in log


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/v1/nothing", "/", "/v1/stream/extra"])
def test_a_handshake_to_an_unknown_path_is_closed_before_it_is_accepted(path):
    from scribe.asgi import application

    _, secret = api_key_create(owner_name="meetings", scopes=["stream"])

    async def connect():
        headers = [(b"authorization", f"Bearer {secret}".encode())]
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect()
        await communicator.wait()
        return connected, code

    assert asyncio.run(connect()) == (False, 1000)
