"""Reads and renderings behind the OpenAI-compatible endpoints: what a job has produced so
far, and a stored result in OpenAI's response formats."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from openai_compat.serializers import TranscriptionRequest, served_models
from transcription import storage
from transcription.engine import CONTENT_TYPES, render, transcript_from_dict
from transcription.models import Job


def models_list() -> dict[str, Any]:
    """``GET /v1/models``: the names a transcription request may give, in OpenAI's shape.

    ``created`` is 0: scribe does not know when a model's weights were made.
    """
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "scribe"}
            for name in served_models()
        ],
    }


@dataclass(frozen=True)
class Partial:
    index: int
    text: str


@dataclass(frozen=True)
class JobState:
    status: str
    partials: tuple[Partial, ...]  # segments decoded since the index asked for
    error_code: str
    error_message: str
    result_path: str


def job_state(*, job_id, partials_after: int | None = None) -> JobState:
    """The job's status, and the partial segments its worker has written past index
    ``partials_after`` (none read when it is None).

    One or two small queries, for a web process polling a running job.
    """
    job = Job.objects.only("status", "error_code", "error_message", "result_path").get(pk=job_id)
    partials: tuple[Partial, ...] = ()
    if partials_after is not None:
        rows = job.stream_segments.filter(index__gt=partials_after).order_by("index")
        partials = tuple(Partial(i, text) for i, text in rows.values_list("index", "text"))
    return JobState(
        status=job.status,
        partials=partials,
        error_code=job.error_code,
        error_message=job.error_message,
        result_path=job.result_path,
    )


def job_result(*, result_path: str) -> dict[str, Any]:
    return json.loads(storage.result_read(result_path))


def usage(result: dict[str, Any]) -> dict[str, Any]:
    """Audio seconds, rounded up as OpenAI counts them."""
    return {"type": "duration", "seconds": math.ceil(result.get("duration_s") or 0.0)}


def verbose_json(result: dict[str, Any], request: TranscriptionRequest) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments unless only words were asked, words if asked.

    ``language`` is the ISO code (``en``, ``ko``), as scribe detects it. ``seek`` is the
    segment's start in 10 ms frames of the file (scribe decodes speech regions, not
    OpenAI's fixed 30 s windows).
    """
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": result["language"],
        "duration": result["duration_s"],
        "text": result["text"],
    }
    if request.segments:
        body["segments"] = [
            {
                "id": i,
                "seek": round(s["start"] * 100),
                "start": s["start"],
                "end": s["end"],
                "text": s["text"],
                "tokens": s.get("tokens") or [],
                "temperature": s["temperature"],
                "avg_logprob": s["avg_logprob"],
                "compression_ratio": s["compression_ratio"],
                "no_speech_prob": s["no_speech_prob"],
            }
            for i, s in enumerate(result["segments"])
        ]
    if request.words:
        body["words"] = [
            {"word": w["text"].strip(), "start": w["start"], "end": w["end"]}
            for s in result["segments"]
            for w in s.get("words") or ()
        ]
    body["usage"] = usage(result)
    return body


def response_content(result: dict[str, Any], request: TranscriptionRequest) -> tuple[str, str]:
    """The body and content type of a completed transcription in the asked format."""
    fmt = request.response_format
    if fmt == "json":
        body = {"text": result["text"], "usage": usage(result)}
        return json.dumps(body, ensure_ascii=False), CONTENT_TYPES["json"]
    if fmt == "verbose_json":
        return json.dumps(verbose_json(result, request), ensure_ascii=False), CONTENT_TYPES["json"]
    if fmt == "text":
        return result["text"] + "\n", CONTENT_TYPES["txt"]
    return render(transcript_from_dict(result), fmt), CONTENT_TYPES[fmt]


def failure(state: JobState) -> tuple[int, str, str]:
    """Status, code and message of a job that ended without a transcript."""
    if state.status == Job.Status.CANCELLED:
        return (
            409,
            "job_cancelled",
            "The job was cancelled (POST /v1/jobs/{id}/cancel, or DELETE) before it ended.",
        )
    if state.error_code == "duration_too_long":
        return 413, state.error_code, state.error_message
    return 500, state.error_code or "job_failed", state.error_message or "The job failed."
