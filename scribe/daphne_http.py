"""What daphne's HTTP layer answers on its own: the API's envelope, and no form parsing.

daphne serves HTTP with Twisted, and two things there answered before scribe could:

- Twisted's ``Request`` parses every ``multipart/form-data`` and urlencoded POST body into
  ``request.args`` before daphne hands it on (daphne never reads them: the ASGI app gets
  the raw body). A body Python's ``email`` parser cannot read as multipart (only the
  closing boundary, no boundary parameter, a boundary the body does not use) was answered
  ``400`` with no body at all, and an upload of any size was parsed, in memory, a second
  time. The API's own parsers (Django's, through DRF) read these bodies and answer what is
  wrong in the envelope.
- Requests that are not HTTP enough to reach the app (an unreadable request line or
  Content-Length, a header too long, a bad header name, a path that is not ASCII, a
  timeout) were answered by Twisted with a bare ``400`` or a dropped connection, and by
  daphne with an HTML page.

``install()`` makes daphne build its requests from ``ScribeWebRequest`` and gives
Twisted's own refusals the envelope. ``scribe.asgi`` calls it, which every way of running
the web process imports in the daphne process (``daphne scribe.asgi:application``,
``manage.py serve``, ``runserver``); it changes nothing for other servers.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from daphne import http_protocol
from twisted.web import http

from openai_compat.errors import openai_error
from scribe.errors import error_body

# daphne's basic_error statuses (and Twisted's) and what each means to a caller.
MESSAGES = {
    400: (
        "malformed_request",
        "The request could not be read as HTTP ({detail}): send it with an HTTP client "
        "library, with ASCII in the path and query (percent-encode the rest).",
    ),
    431: (
        "request_header_fields_too_large",
        "A line of the request (its request line or one header) is longer than "
        f"{http.HTTPChannel.MAX_LENGTH} bytes: send a shorter URL or header.",
    ),
    500: (
        "internal_error",
        "The server failed on this request; it was logged. Retry, and tell the operator "
        "if it happens again.",
    ),
    503: (
        "unavailable",
        "The server did not answer in time ({detail}). Retry in a few seconds.",
    ),
}


def envelope(status: int, detail: str, path: bytes = b"") -> bytes:
    code, message = MESSAGES.get(status, MESSAGES[500])
    detail = detail.rstrip(".")
    message = message.format(detail=detail[:1].lower() + detail[1:])
    if path.startswith(b"/v1/audio/"):  # OpenAI's clients read OpenAI's shape
        return json.dumps(openai_error(status, code, message)).encode()
    return json.dumps(error_body(code, message)).encode()


def raw_response(status: int, body: bytes) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for Twisted's channel."""
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ScribeWebRequest(http_protocol.WebRequest):
    """daphne's request, without Twisted's parse of form bodies, with errors enveloped."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def basic_error(self, status, status_text, body):
        payload = envelope(status, body, self.path or b"")
        self.handle_reply(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"Content-Type", b"application/json")],
            }
        )
        self.handle_reply({"type": "http.response.body", "body": payload})


def _respond_to_bad_request_and_disconnect(channel: Any) -> None:
    """Twisted's refusal of a request it could not parse, with a body that says so."""
    detail = (
        "its request line, a header, its Content-Length or its chunked body is malformed, "
        "or it has too many headers"
    )
    channel.transport.write(raw_response(400, envelope(400, detail)))
    channel.loseConnection()


def _line_length_exceeded(channel: Any, line: bytes) -> None:
    """Twisted dropped the connection without a word; answer 431 first."""
    channel.transport.write(raw_response(431, envelope(431, "")))
    channel.loseConnection()


def install() -> None:
    http_protocol.WebRequest = ScribeWebRequest  # read by daphne's HTTPFactory.buildProtocol
    # Twisted's own refusals, which no hook reaches (channel is an HTTPChannel).
    http.HTTPChannel._respondToBadRequestAndDisconnect = _respond_to_bad_request_and_disconnect  # type: ignore[method-assign]
    http.HTTPChannel.lineLengthExceeded = _line_length_exceeded  # type: ignore[method-assign, assignment]
