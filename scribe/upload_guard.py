"""Refuse an upload with 413 before Django stores it.

Django's ASGI handler stores a request's whole body before the view runs, so a size check
in the view comes after the disk has been filled. This middleware counts the body as the
server hands it over and answers 413 the moment the limit is passed (or at once when
Content-Length says so), telling Django the client went away so it stores nothing more.
Under daphne that is after the whole body has arrived: daphne takes in a body whole
before the application sees it (docs/operations.md, "Uploads and memory").
"""

from __future__ import annotations

import json

from django.conf import settings

from deepgram_compat.errors import deepgram_error
from openai_compat.errors import openai_error
from scribe.errors import error_body
from transcription.errors import UploadTooLargeError
from transcription.uploads import ENVELOPE_BYTES, max_upload_bytes


class UploadSizeGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        limit = max_upload_bytes() + ENVELOPE_BYTES
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, scope)

        received = 0
        over = False
        started = False

        async def counting_receive():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if over and not started:
            await self._refuse(send, scope)

    @staticmethod
    async def _refuse(send, scope) -> None:
        error = UploadTooLargeError(settings.SCRIBE_MAX_UPLOAD_MB)
        if scope["path"].startswith("/v1/audio/"):  # OpenAI's clients read OpenAI's shape
            payload = openai_error(413, error.code, error.message)
        elif scope["path"] == "/v1/listen":  # Deepgram's clients read Deepgram's shape
            payload = deepgram_error(error.code, error.message)
        else:
            payload = error_body(error.code, error.message)
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
