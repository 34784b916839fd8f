"""``POST /v1/listen``: Deepgram's pre-recorded API, as its SDK's ``transcribe_file``
calls it.

The body is the audio itself (any Content-Type scribe decodes); the query carries the
options (``deepgram_compat/params.py``). A request is a scribe job, checked, stored and
queued exactly as ``POST /v1/jobs`` does it (DRF: key, scope, rate limit, upload and
duration limits, queue), then answered when the workers finish it
(transcription/waiting.py) in Deepgram's response shape (prerecorded.py) — or, with
``callback``, answered ``{"request_id"}`` at once and delivered by the signed webhooks.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FileUploadParser
from rest_framework.response import Response
from rest_framework.views import APIView

from deepgram_compat import params
from deepgram_compat.errors import error_response, exception_handler
from deepgram_compat.prerecorded import Rendering, response
from transcription import services as job_services
from transcription.models import Job
from transcription.serializers import options_parse
from transcription.uploads import LimitedUploadHandler
from transcription.waiting import failure, in_pool, job_ended, job_result, still_running

# The parameters this endpoint acts on; every other one is accepted and ignored.
HANDLED = (
    "model",
    "language",
    "detect_language",
    "punctuate",
    "smart_format",
    "utterances",
    "utt_split",
    "paragraphs",
    "multichannel",
    "diarize",
    "diarize_model",
    "keyterm",
    "keywords",
    "callback",
)
FLAGS = ("punctuate", "smart_format", "utterances", "paragraphs", "multichannel", "diarize")
WAIT_SETTING = "SCRIBE_OPENAI_WAIT_S"  # one wait for the synchronous endpoints


class RawAudioParser(FileUploadParser):
    """The request body is the file (no multipart, no filename needed)."""

    def get_filename(self, stream, media_type, parser_context):
        return "audio"


@dataclass(frozen=True)
class Submission:
    job: Job
    rendering: Rendering
    callback: bool


def _options(request) -> tuple[dict[str, Any], Rendering]:
    """The job's options and the answer's rendering from the query; ValidationError names
    a parameter that is wrong."""
    query = request.query_params
    try:
        flags = {name: params.flag(query.get(name)) for name in FLAGS}
        utt_split = float(query.get("utt_split") or 0.8)
    except ValueError as exc:
        raise ValidationError({"query": [str(exc)]}) from None
    diarize: bool | str = flags["diarize"] or bool(query.get("diarize_model"))
    if flags["multichannel"]:
        diarize = "channels"  # each channel transcribed on its own
    language = params.language(query.get("language"))
    if params.flag(query.get("detect_language"), default=False):
        language = None
    options: dict[str, Any] = {
        "model": params.model(query.get("model"), lane="batch"),
        "language": language,
        "word_timestamps": True,  # Deepgram always answers words
        "diarize": diarize,
        "hotwords": list(params.hotwords(query.getlist("keyterm"), query.getlist("keywords"))),
    }
    if query.get("callback"):
        options["callback_url"] = query["callback"]
    rendering = Rendering(
        **flags,  # type: ignore[arg-type]  # the boolean fields, by name
        utt_split=utt_split,
        ignored=tuple(params.ignored(query.keys(), handled=HANDLED)),
    )
    return options, rendering


class ListenSubmitView(APIView):
    """The synchronous half: authenticate, read the query, store the audio, queue a job."""

    required_scope = "transcribe"
    parser_classes = [RawAudioParser]

    def get_exception_handler(self):
        return exception_handler

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body: the audio goes to disk, limited in size.
        request.upload_handlers = [LimitedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def post(self, request):
        if request.content_type.split(";")[0].strip().lower() == "application/json":
            raise ValidationError(
                {
                    "url": [
                        "scribe fetches nothing: send the audio itself as the request body "
                        '(the SDK\'s transcribe_file), not a JSON {"url": …} '
                        "(transcribe_url)."
                    ]
                }
            )
        wanted, rendering = _options(request)
        options = options_parse(wanted, owner=request.user.owner)
        upload = request.data.get("file") if hasattr(request.data, "get") else None
        if upload is None or not upload.size:
            raise ValidationError({"body": ["Send the audio as the request body; it was empty."]})
        try:
            with Path(upload.temporary_file_path()).open("rb") as audio:
                sha256 = hashlib.file_digest(audio, "sha256").hexdigest()
            rendering = dataclasses.replace(rendering, sha256=sha256)
            options = dataclasses.replace(options, deepgram=rendering.stored())
            job = job_services.job_create(owner=request.user.owner, upload=upload, options=options)
        finally:
            upload.close()  # the temporary file is deleted on close
        # Not rendered: the async view below takes it from here.
        submission = Submission(job, rendering, callback=bool(options.callback_url))
        return Response(submission, status=status.HTTP_202_ACCEPTED)


submit = ListenSubmitView.as_view()


def _submit(request: HttpRequest):
    answer = submit(request)
    if not isinstance(getattr(answer, "data", None), Submission):
        answer.render()  # an error, answered as it is
    return answer


@csrf_exempt
async def listen(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return error_response(
            405,
            "method_not_allowed",
            "Use POST with the audio as the body (the live protocol is a WebSocket).",
            headers={"Allow": "POST"},
        )
    answer = await in_pool(_submit, request=request)
    submission = getattr(answer, "data", None)
    if not isinstance(submission, Submission):
        return answer
    job_id = str(submission.job.pk)
    headers = {"X-Scribe-Job-Id": job_id, "dg-request-id": job_id}
    if submission.callback:
        return JsonResponse({"request_id": job_id}, headers=headers)
    wait_s = getattr(settings, WAIT_SETTING)
    state = await job_ended(job_id, wait_s=wait_s)
    if not state.ended:
        message = still_running(job_id, state.status, wait_s, WAIT_SETTING)
        return error_response(
            504,
            "job_still_running",
            f"{message}; or send long files with callback.",
            request_id=job_id,
            headers=headers,
        )
    if state.status != Job.Status.COMPLETED:
        code_status, code, message = failure(state)
        return error_response(code_status, code, message, request_id=job_id, headers=headers)
    result = await in_pool(job_result, result_path=state.result_path)
    body = response(
        result, request_id=job_id, created=submission.job.created_at, rendering=submission.rendering
    )
    return JsonResponse(body, headers=headers, json_dumps_params={"ensure_ascii": False})
