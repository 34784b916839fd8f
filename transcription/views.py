"""The jobs API under /v1/: thin views over the job app's services and selectors."""

from __future__ import annotations

import json
from pathlib import Path

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.throttling import DetectRateThrottle
from notes.markdown import job_markdown
from notes.representation import job_notes, json_with_members
from realtime.audio import ENCODINGS, SAMPLE_RATES
from scribe.web import sent_as_read
from transcription import detect, erasure, selectors, services, storage
from transcription.engine import CONTENT_TYPES, FORMATS, render, transcript_from_dict
from transcription.errors import JobStateError, ResultErasedError, ResultGoneError
from transcription.models import Job
from transcription.representation import job_representation
from transcription.serializers import JobOptionsSerializer, PcmQuerySerializer
from transcription.uploads import LimitedUploadHandler

# The transcript's formats, and Markdown: the notes and the transcript in one document.
RESULT_FORMATS = (*FORMATS, "md")
MARKDOWN = "text/markdown; charset=utf-8"

# An answer in the error shape (scribe/schema.py adds the common ones to every operation).
ERROR = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"}, description="See error.message."
)


def base_url(request: Request) -> str:
    """The links of a job's representation start where this request came in."""
    return request.build_absolute_uri("/")


class OwnedJobsMixin:
    """Every job query goes through the caller's owner: another owner's job is a 404."""

    required_scope = "transcribe"
    request: Request

    def get_queryset(self):
        return Job.objects.for_owner(self.request.user.owner)


class JobListView(OwnedJobsMixin, GenericAPIView):
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        # Must be set before anything reads the body: uploads go to disk, limited in size.
        request.upload_handlers = [LimitedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "options": {"type": "string", "description": "JSON object of job options"},
                },
            }
        },
        responses={202: OpenApiTypes.OBJECT},
        description="Upload an audio or video file and queue it for transcription.",
    )
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError(
                {"file": ["Send the audio or video as the multipart field 'file'."]}
            )
        raw_options = request.data.get("options") or "{}"
        try:
            options = json.loads(raw_options)
        except json.JSONDecodeError as exc:
            raise ValidationError({"options": [f"Not valid JSON: {exc}."]}) from None
        serializer = JobOptionsSerializer(data=options, context={"owner": request.user.owner})
        if not serializer.is_valid():
            raise ValidationError({"options": serializer.errors})
        try:
            job = services.job_create(
                owner=request.user.owner, upload=upload, options=serializer.validated_data
            )
        finally:
            upload.close()  # the temporary file is deleted on close
        return Response(
            job_representation(job, base_url=base_url(request)), status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        operation_id="jobs_list",
        parameters=[
            OpenApiParameter("status", str, enum=list(Job.Status.values)),
            OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="From 1."),
        ],
        responses={200: OpenApiTypes.OBJECT},
        description="The caller's jobs, newest first, paginated.",
    )
    def get(self, request):
        jobs = self.get_queryset()
        wanted = request.query_params.get("status")
        if wanted is not None:  # an empty ?status= too: leave it out for every status
            if wanted not in Job.Status.values:
                raise ValidationError(
                    {"status": [f"Use one of {', '.join(Job.Status.values)}, or leave it out."]}
                )
            jobs = jobs.filter(status=wanted)
        page = self.paginate_queryset(jobs.with_jobs_ahead().prefetch_related("notes"))
        root = base_url(request)
        return self.get_paginated_response([job_representation(j, base_url=root) for j in page])


class JobDetailView(OwnedJobsMixin, GenericAPIView):
    lookup_url_kwarg = "job_id"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, job_id):
        return Response(job_representation(self.get_object(), base_url=base_url(request)))

    @extend_schema(
        responses={
            202: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="The job is stopping; it is erased when it stops "
                "(erase_requested_at is set). Poll it, or DELETE again.",
            ),
            204: OpenApiResponse(description="Erased: only the content-free record is left."),
        },
        description="Erase the job: its transcript, segments, files, file name, prompt, "
        "hotwords and webhook bodies. A finished job is erased at once (204); a queued or "
        "processing one is cancelled and erased when it stops (202). GET then answers the "
        "content-free record with erased_at, and /result 410 erased, until the record "
        "retention deletes the row. To cancel without erasing, POST /v1/jobs/{id}/cancel.",
    )
    def delete(self, request, job_id):
        job = erasure.job_erase(job=self.get_object())
        if job.erased_at is not None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            job_representation(job, base_url=base_url(request)), status=status.HTTP_202_ACCEPTED
        )


class JobCancelView(OwnedJobsMixin, GenericAPIView):
    lookup_url_kwarg = "job_id"

    @extend_schema(
        request=None,
        responses={200: OpenApiTypes.OBJECT},
        description="Cancel, keeping the job's record: a queued job at once, a processing "
        "one at its next segment boundary (cancel_requested). A job that has ended is "
        "answered as it is. (Before, DELETE did this; DELETE now erases.)",
    )
    def post(self, request, job_id):
        job = services.job_cancel(job=self.get_object())
        return Response(job_representation(job, base_url=base_url(request)))


class ResultFormatNegotiation(BaseContentNegotiation):
    """``?format=`` names the transcript format here, not one of DRF's renderers."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JobResultView(OwnedJobsMixin, GenericAPIView):
    lookup_url_kwarg = "job_id"
    content_negotiation_class = ResultFormatNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=sorted(RESULT_FORMATS), default="json")],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/plain"): OpenApiTypes.STR,
            409: ERROR,
            410: ERROR,
        },
    )
    def get(self, request, job_id):
        job = self.get_object()
        fmt = request.query_params.get("format", "json")
        if fmt not in RESULT_FORMATS:
            raise ValidationError({"format": [f"Use one of {', '.join(RESULT_FORMATS)}."]})
        if job.erased_at and not job.result_purged_at:
            raise ResultErasedError(
                "This job was erased (DELETE /v1/jobs/{id}); nothing of its transcript is kept."
            )
        if job.status in (Job.Status.CANCELLED, Job.Status.FAILED):
            raise JobStateError(
                f"The job was {job.status} and will have no result"
                + (f" ({job.error_message})" if job.error_message else "")
                + ". Submit the file again for a transcript."
            )
        if job.status != Job.Status.COMPLETED:
            raise JobStateError(
                f"The job is {job.status}; results exist only for completed jobs. "
                "Poll GET /v1/jobs/{id} until its status is completed."
            )
        if job.result_purged_at or not job.result_path:
            raise ResultGoneError(
                "This result was deleted after the retention period; submit the file again."
            )
        options = job.opts
        if fmt not in options.result_formats and not options.timestamps:
            raise ValidationError(
                {
                    "format": [
                        f"{fmt} places text in time, and this job was submitted with "
                        '"timestamps": false: use one of '
                        + ", ".join(options.result_formats)
                        + ", or submit the file again with timestamps."
                    ]
                }
            )
        response: HttpResponseBase
        notes = job_notes(job)  # made after the transcript, shown with it (notes/)
        if fmt == "json" and options.timestamps:
            # As stored: streamed from storage (S3, or the local disk) as it is read, never
            # whole in the web process's memory; the notes, if any, added at its end.
            chunks = storage.stored_chunks(job.result_path)
            response = StreamingHttpResponse(
                sent_as_read(json_with_members(chunks, notes) if notes else chunks),
                content_type=CONTENT_TYPES[fmt],
            )
            if not notes:
                response["Content-Length"] = str(storage.stored_size(job.result_path))
        else:
            # Rendered from the stored json on demand (or json without its times).
            stored = storage.result_read(job.result_path)
            if fmt == "md":
                body = job_markdown(
                    title=job.source_name or str(job.id),
                    result=json.loads(stored),
                    notes=job.notes.all(),
                )
            elif fmt == "json":
                body = options.result_json(stored)
                if notes:
                    body = json.dumps({**json.loads(body), **notes}, ensure_ascii=False, indent=2)
            else:
                body = render(transcript_from_dict(json.loads(stored)), fmt)
            response = HttpResponse(body, content_type=CONTENT_TYPES.get(fmt, MARKDOWN))
        stem = Path(job.source_name).stem or str(job.id)
        response["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
        return response


DETECTION = {
    "type": "object",
    "required": ["speech", "speech_sec", "duration_sec", "regions"],
    "properties": {
        "speech": {"type": "boolean", "description": "Whether the VAD heard any speech."},
        "speech_sec": {"type": "number", "description": "Seconds of speech in all."},
        "duration_sec": {"type": "number", "description": "The clip's length."},
        "regions": {
            "type": "array",
            "description": "Speech, in seconds from the clip's start.",
            "items": {
                "type": "object",
                "required": ["start", "end"],
                "properties": {"start": {"type": "number"}, "end": {"type": "number"}},
            },
        },
    },
}


class DetectView(GenericAPIView):
    """Speech presence by the VAD alone (transcription/detect.py), with its own rate limit."""

    required_scope = "transcribe"
    throttle_classes = [DetectRateThrottle]
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers = [LimitedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        operation_id="v1_detect_create",
        request={
            "multipart/form-data": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
            "application/octet-stream": {
                "type": "string",
                "format": "binary",
                "description": "Raw mono PCM in the format ?encoding= and ?sample_rate= say.",
            },
        },
        parameters=[
            OpenApiParameter(
                "encoding",
                str,
                enum=sorted(ENCODINGS),
                description="A raw body's samples (required with one).",
            ),
            OpenApiParameter(
                "sample_rate",
                int,
                enum=list(SAMPLE_RATES),
                description="A raw body's rate in Hz (required with one).",
            ),
        ],
        responses={200: OpenApiResponse(response=DETECTION), 413: ERROR},
        description="Whether a short clip (at most SCRIBE_DETECT_MAX_S, 60 s by default) "
        "holds speech, and where: Silero VAD only, no transcription, so a client can ask "
        "before each chunk it sends. The clip is a file (multipart field 'file', any audio "
        "or video format) or raw PCM (any other body, with ?encoding=&sample_rate=). "
        "Rate-limited apart from the key's other calls (SCRIBE_DETECT_RATE_LIMIT).",
    )
    def post(self, request):
        raw = request.content_type.split(";")[0].strip() != "multipart/form-data"
        # A plain dict: from a QueryDict DRF would take "?encoding=" as leaving it out.
        query = PcmQuerySerializer(data=request.query_params.dict(), context={"raw_body": raw})
        query.is_valid(raise_exception=True)
        if not raw:
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationError({"file": ["Send the clip as the multipart field 'file'."]})
            try:
                audio = detect.clip_from_file(
                    path=Path(upload.temporary_file_path()), name=Path(upload.name or "").name
                )
            finally:
                upload.close()  # the temporary file is deleted on close
        else:
            audio = self._raw_clip(request, **query.validated_data)
        return Response(detect.speech_detect(audio=audio).to_dict())

    @staticmethod
    def _raw_clip(request: Request, *, encoding: str, sample_rate: int):
        declared = request.META.get("CONTENT_LENGTH")
        body = detect.pcm_body_read(
            stream=request._request,  # the body as sent: DRF parses none of it here
            declared_bytes=int(declared) if declared and declared.isdigit() else None,
            limit_bytes=detect.pcm_limit_bytes(encoding=encoding, sample_rate=sample_rate),
        )
        width = ENCODINGS[encoding][0].itemsize
        if not body or len(body) % width:
            raise ValidationError(
                {
                    "body": [
                        f"{len(body)} bytes is not a whole number of {encoding} samples "
                        f"({width} bytes each): send the PCM itself, whole samples."
                    ]
                }
            )
        return detect.clip_from_pcm(body=body, encoding=encoding, sample_rate=sample_rate)


class SystemQueueView(GenericAPIView):
    """Queue depth for operators' dashboards (``admin`` scope)."""

    required_scope = "admin"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(selectors.queue_summary())


REALTIME_WORKER = {
    "type": "object",
    "description": "A realtime worker process, as it measured itself when it started.",
    "properties": {
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "model": {"type": "string"},
        "device": {"type": "string", "description": "cpu or cuda:N"},
        "compute_type": {"type": "string"},
        "measured_sessions": {
            "type": "integer",
            "description": "Live sessions its start-up measurement says it keeps up with.",
        },
        "session_cap": {
            "type": "integer",
            "description": "Live sessions it admits: SCRIBE_REALTIME_MAX_SESSIONS, else the "
            "measured number within what the device plan holds memory for.",
        },
        "batch_size": {
            "type": "integer",
            "description": "Sessions decoded together at most: SCRIBE_REALTIME_MAX_BATCH, "
            "else 8 where a batch costs less than its sessions alone (a GPU), else 1.",
        },
        "started_at": {"type": "string", "format": "date-time"},
        "seen_at": {"type": "string", "format": "date-time"},
    },
}
SYSTEM_STATUS = {
    "type": "object",
    "properties": {
        "device": {"type": "object", "description": "This host's hardware."},
        "free_vram_mb": {"type": "object", "additionalProperties": {"type": "number"}},
        "queue": {"type": "object", "description": "As GET /v1/system/queue."},
        "plan": {"type": "object", "description": "The batch lane's device plan, or error."},
        "workers": {
            "type": "object",
            "properties": {
                "batch_clusters": {"type": "array", "items": {"type": "object"}},
                "busy": {"type": "array", "items": {"type": "object"}},
                "realtime": {
                    "type": "object",
                    "properties": {
                        "in_web_process": {"type": "boolean"},
                        "channel": {"type": "string"},
                        "workers": {
                            "type": "array",
                            "items": REALTIME_WORKER,
                            "description": "Every realtime worker alive now.",
                        },
                    },
                },
            },
        },
        "models": {"type": "object", "description": "Each lane's model, and those loaded."},
        "notes": {
            "type": "object",
            "description": "The notes queue (docs/notes.md): whether an LLM is set, the "
            "queue's name, notes pending and the oldest one's age, and a problem to act on.",
            "properties": {
                "llm_configured": {"type": "boolean"},
                "queue": {"type": "string"},
                "pending": {"type": "integer"},
                "oldest_pending_age_sec": {"type": "number", "nullable": True},
                "problem": {"type": "string", "nullable": True},
            },
        },
    },
}


class SystemView(GenericAPIView):
    """Hardware, device plan, workers, queue depth and models (``admin`` scope)."""

    required_scope = "admin"

    @extend_schema(responses={200: OpenApiResponse(response=SYSTEM_STATUS)})
    def get(self, request):
        return Response(selectors.system_status())
