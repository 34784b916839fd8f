"""Channels middleware: authenticate a WebSocket handshake by API key, into the scope.

The key may come as ``Authorization: Bearer <key>`` (or ``Token <key>``, as Deepgram's
clients send it) or ``X-API-Key`` on the handshake, or, for browsers that cannot set
headers, as a ``key.<key>`` subprotocol, the subprotocols ``token`` then ``<key>`` (Deepgram's
browser form) or ``?api_key=<key>``.
The consumer then decides (scope checks) before it accepts.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from accounts.audit import request_denied_record
from accounts.models import APIKey
from accounts.services import api_key_touch

KEY_SUBPROTOCOL = "key."


def key_from_scope(scope) -> str | None:
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    if headers.get("x-api-key"):
        return headers["x-api-key"].strip()
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and credentials.strip():
        return credentials.strip()
    protocols = list(scope.get("subprotocols") or [])
    for index, protocol in enumerate(protocols):
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
        if protocol.lower() == "token" and index + 1 < len(protocols):
            return protocols[index + 1]
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    return query.get("api_key", [None])[0]


def authenticate_key(raw: str | None, *, route: str, remote_addr: str | None) -> APIKey | None:
    """Return the usable key for ``raw``, or None after auditing the refusal."""
    if raw:
        try:
            key: APIKey | None = APIKey.objects.get_from_key(raw)  # type: ignore[assignment]
        except APIKey.DoesNotExist:
            key = None
        if key is not None and not key.has_expired:
            if key.has_scope("stream"):
                api_key_touch(key=key)
            else:
                request_denied_record(
                    raw_key=raw,
                    route=route,
                    key=key,
                    remote_addr=remote_addr,
                    reason="WebSocket: key lacks the 'stream' scope",
                )
            return key
    request_denied_record(
        raw_key=raw, route=route, remote_addr=remote_addr, reason="WebSocket: no valid API key"
    )
    return None


def key_still_valid(key: APIKey) -> bool:
    fresh = APIKey.objects.filter(pk=key.pk).first()
    return fresh is not None and not fresh.revoked and not fresh.has_expired


class APIKeyWebSocketMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            client = scope.get("client") or (None, None)
            scope = dict(scope)
            scope["api_key"] = await database_sync_to_async(authenticate_key)(
                key_from_scope(scope), route=f"WS {scope.get('path', '')}", remote_addr=client[0]
            )
        return await super().__call__(scope, receive, send)
