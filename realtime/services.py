"""Persistence of live sessions: each is a Job of kind ``stream`` with its finals in rows.

Called from the realtime worker's decode thread (synchronous ORM, off the event loop).
"""

from __future__ import annotations

import json
import math
import os
import socket
from typing import Any

from django.utils import timezone

from realtime.models import StreamSegment
from realtime.session import FinalSegment
from transcription import storage
from transcription.models import Job

LOW_CONFIDENCE = 0.5


def stream_job_create(*, owner_id: int, options: dict[str, Any]) -> Job:
    now = timezone.now()
    return Job.objects.create(
        owner_id=owner_id,
        kind=Job.Kind.STREAM,
        status=Job.Status.PROCESSING,
        options=options,
        source_name="live stream",
        started_at=now,
        heartbeat_at=now,
        attempts=1,
        worker_host=socket.gethostname(),
        worker_pid=os.getpid(),
        total_s=None,
    )


def segment_flags(segment: FinalSegment) -> list[str]:
    return ["low_confidence"] if segment.confidence < LOW_CONFIDENCE else []


def stream_final_save(*, job_id, segment: FinalSegment) -> dict[str, Any]:
    """Store a final and return it as the client sees it."""
    words = [
        {"start": w.start, "end": w.end, "text": w.text, "probability": w.probability}
        for w in segment.words
    ]
    flags = segment_flags(segment)
    StreamSegment.objects.create(
        job_id=job_id,
        index=segment.index,
        start=segment.start,
        end=segment.end,
        text=segment.text,
        words=words,
        confidence=segment.confidence,
        flags=flags,
    )
    Job.objects.filter(pk=job_id).update(processed_s=segment.end, heartbeat_at=timezone.now())
    return {
        "id": segment.index,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "words": words,
        "confidence": segment.confidence,
        "flags": flags,
    }


def stream_jobs_heartbeat(*, job_ids: list) -> None:
    if job_ids:
        Job.objects.filter(pk__in=job_ids, status=Job.Status.PROCESSING).update(
            heartbeat_at=timezone.now()
        )


def stream_result(job: Job, *, run: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The session's transcript in the same shape as a file job's result json."""
    segments = []
    for row in job.stream_segments.order_by("index"):
        probabilities = [max(w["probability"], 1e-6) for w in row.words] or [row.confidence]
        segments.append(
            {
                "id": row.index,
                "start": row.start,
                "end": row.end,
                "text": f" {row.text}",
                # Live decoding keeps word probabilities only; the segment's log-probability is
                # their mean log, and no-speech/compression figures are not measured.
                "avg_logprob": round(
                    sum(math.log(p) for p in probabilities) / len(probabilities), 4
                ),
                "no_speech_prob": 0.0,
                "compression_ratio": 0.0,
                "temperature": 0.0,
                "words": row.words,
                "confidence": row.confidence,
                "flags": row.flags,
            }
        )
    duration = max((s["end"] for s in segments), default=0.0)
    return {
        "language": job.language or run.get("decoding", {}).get("language") or "unknown",
        "language_probability": 1.0,
        "duration_s": round(max(duration, metrics.get("audio_duration_s", 0.0)), 3),
        "segments": segments,
        "speech": [],
        "run": run,
        "metrics": metrics,
        "text": " ".join(s["text"].strip() for s in segments),
    }


def stream_job_finish(
    *, job_id, run: dict[str, Any], metrics: dict[str, Any], language: str = "", note: str = ""
) -> None:
    """Close a session's job as completed, with its result stored like a file job's."""
    job = Job.objects.get(pk=job_id)
    if job.is_terminal:
        return
    if language:
        job.language = language
    result = stream_result(job, run=run, metrics=metrics)
    path = storage.result_save(job.id, json.dumps(result, ensure_ascii=False))
    if job.mark_completed(result_path=path, language=result["language"], run=run, metrics=metrics):
        if note:
            Job.objects.filter(pk=job_id).update(error_code="interrupted", error_message=note)
    else:
        storage.delete_quietly(path)


def stream_job_recover(*, job: Job) -> None:
    """A session whose worker died: keep what was finalised, as a completed job."""
    last = job.stream_segments.order_by("-index").values_list("end", flat=True).first() or 0.0
    stream_job_finish(
        job_id=job.id,
        run=job.run or {},
        language=job.language,
        metrics={
            "audio_duration_s": last,
            "processing_time_s": 0.0,
            "real_time_factor": 0.0,
            "speech_duration_s": 0.0,
            "vad_speech_coverage": None,
            "mean_confidence": None,
            "windows": 0,
        },
        note="The realtime worker stopped during the session; the transcript holds every "
        "final sent before that.",
    )
