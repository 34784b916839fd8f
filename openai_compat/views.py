"""``POST /v1/audio/transcriptions`` and ``GET /v1/models``, as OpenAI's clients call them.

A transcription is a scribe job: the upload is checked, stored and queued exactly as
``POST /v1/jobs`` does it (DRF: key, scope, rate limit, upload limits), then this view
waits for the workers on the event loop (transcription/waiting.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from openai_compat import services
from openai_compat.errors import NO_RETRY, error_response, exception_handler, openai_error
from openai_compat.openapi import transcription_schema
from openai_compat.serializers import TranscriptionRequest, transcription_request
from transcription import services as job_services
from transcription.models import Job
from transcription.serializers import JobOptionsSerializer
from transcription.uploads import LimitedUploadHandler
from transcription.waiting import (
    POLL_INTERVAL_S,
    failure,
    in_pool,
    job_ended,
    job_result,
    job_state,
    still_running,
)

KEEPALIVE_S = 15.0  # an SSE comment this often, so proxies keep a quiet stream open


class OpenAIErrorsMixin:
    """DRF's errors on these endpoints in OpenAI's shape (``{"error": {"message", …}}``)."""

    def get_exception_handler(self):
        return exception_handler


@dataclass(frozen=True)
class Submission:
    job_id: str
    request: TranscriptionRequest


class TranscriptionSubmitView(OpenAIErrorsMixin, APIView):
    """The synchronous half: authenticate, check the form, store the upload, queue a job."""

    required_scope = "transcribe"
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body: uploads go to disk, limited in size.
        request.upload_handlers = [LimitedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @transcription_schema
    def post(self, request):
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise ValidationError(
                    {"file": ["Send the audio or video as the multipart field 'file'."]}
                )
            wanted = transcription_request(request.data)
            options = JobOptionsSerializer(
                data=wanted.options, context={"owner": request.user.owner}
            )
            options.is_valid(raise_exception=True)
            job = job_services.job_create(
                owner=request.user.owner, upload=upload, options=options.validated_data
            )
        finally:
            if upload is not None:
                upload.close()  # the temporary file is deleted on close
        # Not rendered: the async view below takes it from here.
        return Response(Submission(str(job.id), wanted), status=status.HTTP_202_ACCEPTED)


submit = TranscriptionSubmitView.as_view()


def _submit(request: HttpRequest) -> HttpResponse:
    response = submit(request)
    if not isinstance(getattr(response, "data", None), Submission):
        response.render()  # an error, answered as it is
    return response


@csrf_exempt
async def transcriptions(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return error_response(
            405, "method_not_allowed", "Use POST with a multipart form.", headers={"Allow": "POST"}
        )
    response = await in_pool(_submit, request=request)
    submission = getattr(response, "data", None)
    if not isinstance(submission, Submission):
        return response
    job_id, wanted = submission.job_id, submission.request
    headers = {"X-Scribe-Job-Id": job_id}
    if wanted.stream:
        stream = StreamingHttpResponse(
            _events(job_id), content_type="text/event-stream", headers=headers
        )
        stream["Cache-Control"] = "no-cache"
        stream["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
        return stream
    return await _answer_when_done(job_id, wanted, headers)


# What APIView.as_view() sets: drf-spectacular documents this route from the DRF view that
# checks its form (openai_compat/openapi.py), although the route itself is async.
transcriptions.cls = TranscriptionSubmitView  # type: ignore[attr-defined]
transcriptions.initkwargs = {}  # type: ignore[attr-defined]


async def _answer_when_done(
    job_id: str, wanted: TranscriptionRequest, headers: dict[str, str]
) -> HttpResponse:
    wait_s = settings.SCRIBE_OPENAI_WAIT_S
    state = await job_ended(job_id, wait_s=wait_s)
    if not state.ended:
        message = still_running(job_id, state.status, wait_s, "SCRIBE_OPENAI_WAIT_S")
        return error_response(
            504,
            "job_still_running",
            f"{message}, or send long files with stream=true.",
            headers={**headers, **NO_RETRY},
        )
    if state.status != Job.Status.COMPLETED:
        code_status, code, message = failure(state)
        return error_response(code_status, code, message, headers={**headers, **NO_RETRY})
    result = await in_pool(job_result, result_path=state.result_path)
    body, content_type = services.response_content(result, wanted)
    return HttpResponse(body, content_type=content_type, headers=headers)


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _events(job_id: str) -> AsyncIterator[bytes]:
    """Server-Sent Events: a ``transcript.text.delta`` per segment as the worker writes
    it, then ``transcript.text.done`` with the final (post-processed) text, or ``error``.

    Deltas are the decoder's text; the final text may differ where the glossary corrected
    it. Segments the worker had not yet written when the job ended come from its result.
    """
    last_index, sent_any = -1, False
    last_sent = time.monotonic()
    wait_s: int | None = settings.SCRIBE_OPENAI_STREAM_WAIT_S
    started = last_sent

    def delta(text: str) -> bytes:
        nonlocal sent_any, last_sent
        piece = (" " if sent_any else "") + text.strip()
        sent_any, last_sent = True, time.monotonic()
        return _event("transcript.text.delta", {"type": "transcript.text.delta", "delta": piece})

    while True:
        state = await in_pool(job_state, job_id=job_id, partials_after=last_index)
        for partial in state.partials:
            last_index = partial.index
            if partial.text.strip():
                yield delta(partial.text)
        if state.status in Job.TERMINAL:
            break
        if wait_s is not None and time.monotonic() >= started + wait_s:
            message = still_running(job_id, state.status, wait_s, "SCRIBE_OPENAI_STREAM_WAIT_S")
            error = openai_error(504, "job_still_running", f"{message}.")
            yield _event("error", {"type": "error", **error})
            return
        if time.monotonic() - last_sent >= KEEPALIVE_S:
            last_sent = time.monotonic()
            yield b": waiting for the workers\n\n"
        await asyncio.sleep(POLL_INTERVAL_S)
    if state.status != Job.Status.COMPLETED:
        code_status, code, message = failure(state)
        yield _event("error", {"type": "error", **openai_error(code_status, code, message)})
        return
    result = await in_pool(job_result, result_path=state.result_path)
    for segment in result["segments"]:
        if segment["id"] > last_index and segment["text"].strip():
            yield delta(segment["text"])
    yield _event(
        "transcript.text.done",
        {"type": "transcript.text.done", "text": result["text"], "usage": services.usage(result)},
    )


class ModelListView(OpenAIErrorsMixin, APIView):
    required_scope = "transcribe"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(services.models_list())
