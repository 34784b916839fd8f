"""The WebSocket routes' last one: a handshake to a path scribe does not serve is refused."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class UnknownPathConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        # A close before accept refuses the handshake, which daphne answers with HTTP 403;
        # its only other answer is the 500 Channels' router raises for an unknown path.
        await self.close()
