"""Malformed requests over a real socket to daphne answer in the API's envelope.

daphne serves HTTP with Twisted, which parsed multipart bodies itself and answered a bare
400 (no body at all) to one it could not read, as it did to requests it could not read as
HTTP (scribe/daphne_http.py). The in-process test client never goes through Twisted.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.e2e.stack import api_key, sqlite_daphne
from tests.media import write_tone_wav

pytestmark = pytest.mark.e2e

BOUNDARY = "BOUNDARY"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, key) of daphne serving scribe over a fresh SQLite database."""
    tmp = tmp_path_factory.mktemp("daphne")
    with sqlite_daphne(tmp) as (port, environ):
        yield port, api_key(environ, "transcribe", "glossary")


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until daphne closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(status_line.split()[1]), headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out, body = out + rest[:length], rest[length + 2 :]
    return out


def post(port: int, key: str, path: str, content_type: str | None, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def envelope(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict]:
    status, headers, body = answer
    assert headers["content-type"].startswith("application/json"), (status, headers, body)
    return status, json.loads(body)["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        # Only the closing boundary: Twisted's parse failed, and it answered an empty 400.
        (f"--{BOUNDARY}--\r\n", MULTIPART, 400, "invalid"),
        # A boundary the body does not use, and a body cut off inside its file part.
        ("--OTHER\r\nContent-Disposition: form-data; name=file\r\n\r\nx\r\n--OTHER--\r\n",
         MULTIPART, 400, "invalid"),
        (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
         "\r\nRIFF", MULTIPART, 400, "invalid"),
        # No boundary parameter, or an empty one.
        (f"--{BOUNDARY}--\r\n", "multipart/form-data", 400, "malformed_request"),
        ("--x\r\n", "multipart/form-data; boundary=", 400, "malformed_request"),
        # Not multipart at all.
        ('{"file": 1}', "application/json", 415, "unsupported_content_type"),
        ("file=1", None, 415, "unsupported_content_type"),
    ],
)  # fmt: skip
def test_a_malformed_upload_is_answered_in_the_envelope(served, body, content_type, status, code):
    port, key = served
    answer = exchange(port, post(port, key, "/v1/jobs", content_type, body.encode()))

    assert envelope(answer)[:1] == (status,)
    assert envelope(answer)[1]["code"] == code


def test_an_empty_upload_says_which_field_is_missing(served):
    port, key = served
    answer = exchange(port, post(port, key, "/v1/jobs", MULTIPART, f"--{BOUNDARY}--\r\n".encode()))

    status, error = envelope(answer)
    assert status == 400
    assert "file" in error["fields"]


def test_the_openai_endpoint_answers_a_malformed_upload_in_openais_shape(served):
    port, key = served
    empty = f"--{BOUNDARY}--\r\n".encode()
    answer = exchange(port, post(port, key, "/v1/audio/transcriptions", MULTIPART, empty))

    status, error = envelope(answer)
    assert (status, error["type"], error["param"]) == (400, "invalid_request_error", "file")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"text": ', 400, "malformed_request"),
        (b'{"text": "\xff\xfe"}', 400, "malformed_request"),
        (b"[1, 2", 400, "malformed_request"),
    ],
)
def test_a_malformed_json_body_is_answered_in_the_envelope(served, body, status, code):
    port, key = served
    answer = exchange(port, post(port, key, "/v1/text/correct", "application/json", body))

    assert (envelope(answer)[0], envelope(answer)[1]["code"]) == (status, code)


def test_a_well_formed_upload_still_becomes_a_job(served, tmp_path):
    port, key = served
    wav = write_tone_wav(tmp_path / "tone.wav", seconds=0.5).read_bytes()
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="tone.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + wav
    body += f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="options"\r\n\r\n'.encode()
    body += f'{{"language": "en"}}\r\n--{BOUNDARY}--\r\n'.encode()
    status, _, answer = exchange(port, post(port, key, "/v1/jobs", MULTIPART, body))

    assert status == 202, answer
    assert json.loads(answer)["source"]["name"] == "tone.wav"


REQUEST = "GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Connection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        # Requests that never reach the app: Twisted and daphne refused them on their own.
        (REQUEST.format("Content-Length: abc\r\n").encode(), 400, "malformed_request"),
        (REQUEST.format("Bad Name: 1\r\n").encode(), 400, "malformed_request"),
        (REQUEST.format("X-Value: a\x0bb\r\n").encode(), 400, "malformed_request"),
        (b"GET /v1/jobs/\xff HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
         400, "malformed_request"),
        (REQUEST.format("Transfer-Encoding: chunked\r\n").encode() + b"zz\r\n",
         400, "malformed_request"),
        # A header longer than Twisted reads: it closed the connection without a word.
        (REQUEST.format(f"X-Big: {'a' * 70_000}\r\n").encode(),
         431, "request_header_fields_too_large"),
        (f"GET /v1/jobs?{'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
         431, "request_header_fields_too_large"),
    ],
)  # fmt: skip
def test_a_request_that_is_not_http_is_answered_in_the_envelope(
    served, request_bytes, status, code
):
    port, _ = served
    answer = exchange(port, request_bytes)

    assert (envelope(answer)[0], envelope(answer)[1]["code"]) == (status, code)
    assert answer[1]["connection"] == "close"
