"""How /v1/schema documents ``POST /v1/audio/transcriptions`` (docs/api.md).

The endpoint is an async function view (it waits for the workers on the event loop), so
drf-spectacular, which only walks DRF views, would not see it: the view carries the DRF
view that checks its form (``cls``, as ``APIView.as_view`` sets it) and this module says
what that form and the answers are. Its errors are in OpenAI's shape, not scribe's, so
every error status is documented here; scribe.schema's hook only fills in what a view
leaves out.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from openai_compat.serializers import GRANULARITIES, RESPONSE_FORMATS
from scribe.openapi import NO_NUL, NOT_BLANK_NO_NUL
from scribe.schema import EVERY_OPERATION, UPLOADS, WITH_BODY


class OpenAIErrorDetail(serializers.Serializer):
    message = serializers.CharField(help_text="what was wrong, what to do")
    type = serializers.CharField(help_text="invalid_request_error, rate_limit_error, …")
    param = serializers.CharField(allow_null=True, help_text="the first bad form field")
    code = serializers.CharField(help_text="scribe's stable error code")


class OpenAIError(serializers.Serializer):
    error = OpenAIErrorDetail()


TEXT: dict[str, Any] = {"type": "string", "pattern": NO_NUL}

FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "model"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "model": {
            "type": "string",
            "pattern": NOT_BLANK_NO_NUL,
            "description": "`whisper-1` (the batch lane) or a name `GET /v1/models` lists.",
        },
        "language": TEXT,
        "prompt": TEXT,
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "temperature": {"type": "number"},
        "timestamp_granularities": {
            "type": "array",
            "items": {"type": "string", "enum": list(GRANULARITIES)},
            "description": "With `verbose_json`; OpenAI's SDK sends `timestamp_granularities[]`.",
        },
        "stream": {
            "type": "boolean",
            "default": False,
            "description": "Answer Server-Sent Events as the workers decode.",
        },
        "hotwords": {
            "type": "array",
            "items": TEXT,
            "description": "scribe's extra: repeated, or comma-separated in one field.",
        },
        "glossary_id": {
            "type": "integer",
            "nullable": True,
            "description": "scribe's extra: one of the caller's glossaries.",
        },
        "diarize": {
            "oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["channels"]}],
            "description": 'scribe\'s extra: true (pyannote) or "channels".',
        },
    },
}

ERRORS = {
    **EVERY_OPERATION,
    **WITH_BODY,
    **UPLOADS,
    "400": "The form is invalid: `error.param` names the first bad field.",
    "409": "The job was cancelled (POST /v1/jobs/{id}/cancel, or DELETE) before it ended.",
    "500": "The job failed: `error.code` and `error.message` say why.",
    "504": "The job is still running after SCRIBE_OPENAI_WAIT_S; `error.message` names it.",
}

JOB_ID_HEADER = OpenApiParameter(
    "X-Scribe-Job-Id",
    OpenApiTypes.UUID,
    OpenApiParameter.HEADER,
    response=[200],
    description="The job this request became (GET /v1/jobs/{id}).",
)


def _answers() -> dict[Any, Any]:
    answers: dict[Any, Any] = {
        (200, "application/json"): OpenApiTypes.OBJECT,  # json and verbose_json
        (200, "text/plain"): OpenApiTypes.STR,
        (200, "application/x-subrip"): OpenApiTypes.STR,
        (200, "text/vtt"): OpenApiTypes.STR,
        (200, "text/event-stream"): OpenApiTypes.STR,
    }
    for status, description in ERRORS.items():
        answers[int(status)] = OpenApiResponse(response=OpenAIError, description=description)
    return answers


transcription_schema = extend_schema(
    operation_id="audio_transcriptions_create",
    description=(
        "OpenAI's audio transcription: the upload becomes a job, answered when the "
        "workers finish it (`stream=true`: as Server-Sent Events). The job's id is in "
        "the X-Scribe-Job-Id header. Errors are in OpenAI's shape."
    ),
    request={"multipart/form-data": FORM},
    parameters=[JOB_ID_HEADER],
    responses=_answers(),
)
