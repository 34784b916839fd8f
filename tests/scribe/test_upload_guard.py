from __future__ import annotations

import asyncio
import json

import pytest

from scribe.upload_guard import UploadSizeGuard
from tests.asgi import http_scope

MB = 1024 * 1024


def post_scope(headers=()):
    return http_scope("POST", "/v1/jobs", headers)


class Body:
    """A client sending ``total`` bytes in 64 KB chunks; counts what was read."""

    def __init__(self, total: int) -> None:
        self.total, self.sent, self.reads = total, 0, 0

    async def receive(self):
        self.reads += 1
        chunk = min(64 * 1024, self.total - self.sent)
        self.sent += chunk
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": self.sent < self.total}


def run(app, scope, body: Body) -> list[dict]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, body.receive, send))
    return sent


async def body_reading_app(scope, receive, send):
    """Stands in for Django's ASGI handler, which reads the whole body first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
def one_mb_limit(settings):
    settings.SCRIBE_MAX_UPLOAD_MB = 1


def test_an_upload_without_length_is_cut_off_as_soon_as_it_passes_the_limit(one_mb_limit):
    body = Body(total=20 * MB)

    sent = run(UploadSizeGuard(body_reading_app), post_scope(), body)

    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "upload_too_large"
    assert body.sent <= 1 * MB + 128 * 1024, "stopped reading right after the limit"


def test_a_declared_length_over_the_limit_is_refused_before_reading(one_mb_limit):
    body = Body(total=5 * MB)

    sent = run(
        UploadSizeGuard(body_reading_app),
        post_scope([(b"content-length", str(5 * MB).encode())]),
        body,
    )

    assert sent[0]["status"] == 413
    assert body.reads == 0


def test_an_upload_within_the_limit_reaches_the_app(one_mb_limit):
    body = Body(total=MB // 2)

    sent = run(UploadSizeGuard(body_reading_app), post_scope(), body)

    assert sent[0]["status"] == 202
    assert body.sent == MB // 2


def test_the_real_asgi_application_stores_nothing_past_the_limit(one_mb_limit, db):
    from scribe.asgi import application

    body = Body(total=8 * MB)
    scope = post_scope([(b"content-type", b"multipart/form-data; boundary=x")])

    sent = run(application, scope, body)

    assert sent[0]["status"] == 413
    assert body.sent <= 1 * MB + 128 * 1024


def test_deepgrams_route_is_refused_in_deepgrams_shape(one_mb_limit):
    scope = http_scope("POST", "/v1/listen", [(b"content-length", str(5 * MB).encode())])

    sent = run(UploadSizeGuard(body_reading_app), scope, Body(total=5 * MB))

    assert sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert set(body) == {"err_code", "err_msg", "request_id"}
    assert body["err_code"] == "upload_too_large"
