"""One error shape for the whole API, and the mapping of domain errors to HTTP.

Every error body is ``{"error": {"code", "message", "fields"?}}``: a stable code for
programs, a sentence for people that says what was wrong and what to do.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from scribe.exceptions import ScribeError

DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "invalid",
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_content_type",
    exceptions.NotAcceptable: "not_acceptable",
}


logger = logging.getLogger(__name__)

# What Django raises when no connection can be had: the server refuses or is down, or this
# process's pool had none to give within SCRIBE_DB_POOL_TIMEOUT_S (psycopg's PoolTimeout).
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


DENIALS = (
    exceptions.NotAuthenticated,
    exceptions.AuthenticationFailed,
    exceptions.PermissionDenied,
    exceptions.Throttled,
)


def problems_text(detail: Any) -> str:
    """One line naming every problem in a ``ValidationError.detail`` (a WebSocket event, an
    error shape with a single message: OpenAI's, Deepgram's)."""
    if isinstance(detail, Mapping):
        return "; ".join(
            f"{name}: {problems_text(problem)}"
            if name != "non_field_errors"
            else problems_text(problem)
            for name, problem in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(problems_text(problem) for problem in detail)
    return str(detail)


def _record_denial(exc: Exception, context: dict[str, Any]) -> None:
    """Every request turned away is counted in the key audit log: which key (prefix),
    which address, why, how often (one row per minute of each, accounts/audit.py)."""
    from accounts.audit import request_denied_record
    from accounts.authentication import key_from_headers

    request = context.get("request")
    if request is None:
        return
    reason = str(getattr(exc, "detail", exc))
    request_denied_record(
        raw_key=key_from_headers(request.headers),
        route=f"{request.method} {request.path}",
        reason=f"{type(exc).__name__}: {reason}",
        remote_addr=request.META.get("REMOTE_ADDR"),
        key=getattr(request, "_auth", None),
    )


def _throttled_without_a_key(exc: Exception, context: dict[str, Any]) -> Exception:
    """A request with no valid key, from an address over SCRIBE_AUTH_FAILURE_RATE_LIMIT of
    them, is answered 429 (with Retry-After) instead of 401; valid keys are never counted."""
    from accounts.throttling import failed_auth_wait

    request = context.get("request")
    if request is None:
        return exc
    wait = failed_auth_wait(request.META.get("REMOTE_ADDR"))
    if wait is None:
        return exc
    return exceptions.Throttled(
        wait=wait,
        detail=(
            "Too many requests without a valid API key from this address (the key was "
            "missing, wrong, expired or revoked); requests with a valid key are not limited "
            "by this."
        ),
    )


def database_unavailable(exc: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The 503 for a request that could not get a database connection: body, status, headers."""
    logger.warning("database unavailable: %s", exc)
    retry_after = settings.SCRIBE_DB_RETRY_AFTER_S
    body = error_body(
        "database_unavailable",
        "The database could not be reached in time (it is overloaded or restarting). "
        f"Retry in {retry_after} s; if this persists, tell the operator (see /health/ready).",
    )
    return body, status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": str(retry_after)}


def is_api(request) -> bool:
    return request.path.startswith("/v1/")


def bad_request(request, exception=None, *args, **kwargs) -> HttpResponse:
    """handler400: Django's own 400s (a Host not in ALLOWED_HOSTS, a malformed request)
    reach no DRF view, so the API's envelope is given here."""
    if not is_api(request):
        return defaults.bad_request(request, exception)
    return JsonResponse(
        error_body(
            "bad_request",
            "The request was refused before reaching the API (for example a Host header "
            "this server does not answer to): call it at the address the operator gave.",
        ),
        status=400,
    )


def page_not_found(request, exception=None, *args, **kwargs) -> HttpResponse:
    """handler404: a path that matches no route (``/v1/jobs/123``: job ids are UUIDs)."""
    if not is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(
        error_body(
            "not_found",
            f"Nothing at {request.path}: check the path against /v1/docs "
            "(job ids are UUIDs, as POST /v1/jobs returned them).",
        ),
        status=404,
    )


def server_error(request, *args, **kwargs) -> JsonResponse:
    """handler500: the error envelope for what escaped the API's handler (middleware,
    non-DRF views); 503 with Retry-After when the cause was the database."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_UNAVAILABLE):
        body, http_status, headers = database_unavailable(exc)
        return JsonResponse(body, status=http_status, headers=headers)
    return JsonResponse(
        error_body(
            "internal_error",
            "The server failed on this request; it was logged. Retry, and tell the operator "
            "if it happens again.",
        ),
        status=500,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # DRF answers Django's Http404 and PermissionDenied as its own; convert them first so
    # that they get the same codes (get_object_or_404 raises Http404, a bad page NotFound).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(
            "Nothing of yours has this id: check it, and that it was made with a key of "
            "the same owner as this one."
        )
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, DATABASE_UNAVAILABLE):
        body, http_status, headers = database_unavailable(exc)
        return Response(body, status=http_status, headers=headers)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        exc = _throttled_without_a_key(exc, context)
    if isinstance(exc, DENIALS):
        _record_denial(exc, context)
    if isinstance(exc, ScribeError):
        return Response(
            error_body(exc.code, exc.message), status=exc.http_status, headers=exc.headers()
        )

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling logs it
    code = next((c for kind, c in DRF_CODES.items() if isinstance(exc, kind)), "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = error_body(
            code, "Some fields are invalid: see fields for what to change.", fields
        )
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = error_body(
            code, "No API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        )
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = error_body(code, str(detail or exc))
    return response
