"""An ASGI HTTP scope, as a server would hand one to scribe's application."""

from __future__ import annotations


def http_scope(method: str, path: str, headers=()) -> dict:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": list(headers),
        "query_string": b"",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
