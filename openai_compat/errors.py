"""OpenAI's error shape on this app's endpoints.

OpenAI clients read ``{"error": {"message", "type", "param", "code"}}`` and branch on the
HTTP status (the SDK raises AuthenticationError on 401, RateLimitError on 429, …). The
errors themselves are scribe's: the API's own handler (scribe.errors) maps and audits them,
and this module only re-shapes its envelope.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework.response import Response

from scribe.errors import exception_handler as scribe_exception_handler
from scribe.errors import problems_text

TYPES = {
    401: "invalid_request_error",  # what OpenAI itself answers for a bad key
    403: "permission_error",
    429: "rate_limit_error",
}
# Request form fields named by scribe's job options under another name.
PARAMS = {"word_timestamps": "timestamp_granularities[]"}
# Sent with every error that comes after the upload became a job: the SDK would otherwise
# retry a 409 or 5xx by uploading the file again, as a second job.
NO_RETRY = {"x-should-retry": "false"}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return TYPES.get(status, "invalid_request_error")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def from_scribe(body: Any, status: int) -> dict[str, Any]:
    """Re-shape scribe's ``{"error": {"code", "message", "fields"?}}`` as OpenAI's.

    Field errors go into the message, so that it says what to change; ``param`` names the
    first field.
    """
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = str(error.get("code") or "error")
    message = str(error.get("message") or body)
    fields = error.get("fields") or {}
    param = None
    if isinstance(fields, dict) and fields:
        param = next(iter(fields))
        message = "; ".join(
            f"{PARAMS.get(name, name)}: {problems_text(v)}" for name, v in fields.items()
        )
        param = PARAMS.get(param, param)
    return openai_error(status, code, message, param)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """scribe's handler (mapping, auditing of denials, Retry-After), in OpenAI's shape."""
    response = scribe_exception_handler(exc, context)
    if response is not None:
        response.data = from_scribe(response.data, response.status_code)
    return response


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    return JsonResponse(openai_error(status, code, message, param), status=status, headers=headers)
