"""Deepgram's error shape on ``/v1/listen``: ``{"err_code", "err_msg", "request_id"}``.

The errors themselves are scribe's: the API's own handler (scribe.errors) maps and audits
them, and this module only re-shapes its envelope, field errors written into ``err_msg``
with Deepgram's parameter names, so that the message says what to change.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import JsonResponse
from rest_framework.response import Response

from scribe.errors import exception_handler as scribe_exception_handler
from scribe.errors import problems_text

# scribe's option names, as the Deepgram request names them.
PARAMS = {"hotwords": "keyterm", "callback_url": "callback", "diarize": "diarize"}


def deepgram_error(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {"err_code": code, "err_msg": message, "request_id": request_id or str(uuid.uuid4())}


def from_scribe(body: Any) -> dict[str, Any]:
    """scribe's ``{"error": {"code", "message", "fields"?}}`` as Deepgram's."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = str(error.get("code") or "error")
    message = str(error.get("message") or body)
    fields = error.get("fields") or {}
    if isinstance(fields, dict) and fields:
        message = "; ".join(
            f"{PARAMS.get(name, name)}: {problems_text(v)}" for name, v in fields.items()
        )
    return deepgram_error(code, message)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """scribe's handler (mapping, auditing of denials, Retry-After), in Deepgram's shape."""
    response = scribe_exception_handler(exc, context)
    if response is not None:
        response.data = from_scribe(response.data)
    return response


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    return JsonResponse(deepgram_error(code, message, request_id), status=status, headers=headers)
