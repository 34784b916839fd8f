"""A job as its owner sees it: the body of ``GET /v1/jobs/{id}`` and of its callback.

Built from the job and a base URL, never from a request: a worker sending a callback has
no request, and the links it gives must be the same as the API's (healthchecks'
``Check.to_dict()``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from django.urls import reverse

from notes.representation import job_notes
from transcription.engine import model_served_name
from transcription.models import Job
from transcription.selectors import job_queue_position


def job_representation(job: Job, *, base_url: str) -> dict[str, Any]:
    """The caller's view of a job, with what matters in its current state; its links are
    absolute, under ``base_url`` (``https://host/``)."""
    data: dict[str, Any] = {
        "job_id": str(job.id),
        "status": job.status,
        "kind": job.kind,
        "created_at": job.created_at,
        "source": {
            "name": job.source_name,
            "format": job.media_format,
            "size_bytes": job.media_size_bytes,
            "duration_sec": job.media_duration_s,
        },
        "options": job.options,
        "attempts": job.attempts,
        "erased_at": job.erased_at,
    }
    if job.erase_requested_at and not job.erased_at:
        data["erase_requested_at"] = job.erase_requested_at
    if job.status == Job.Status.QUEUED:
        # The list annotates it (JobQuerySet.with_jobs_ahead); a single job counts here.
        ahead = getattr(job, "jobs_ahead", None)
        if ahead is None:
            ahead = job_queue_position(job=job)
        data["queue_position"] = ahead + 1
        data["jobs_ahead"] = ahead
    elif job.status == Job.Status.PROCESSING:
        data["started_at"] = job.started_at
        data["progress"] = job.progress_percent
        data["processed_sec"] = round(job.processed_s, 1)
        data["total_sec"] = job.total_s
        data["eta_sec"] = job.eta_s
        data["cancel_requested"] = job.cancel_requested_at is not None
    else:
        data["started_at"] = job.started_at
        data["finished_at"] = job.finished_at
    if job.status == Job.Status.COMPLETED:
        data["summary"] = _summary(job)
        if job.result_purged_at:
            data["results"] = None
            data["results_purged_at"] = job.result_purged_at
        elif job.erased_at:
            data["results"] = None
        else:
            url = urljoin(base_url, reverse("job-result", args=[job.id]))
            data["results"] = {fmt: f"{url}?format={fmt}" for fmt in job.opts.result_formats}
    if job.status == Job.Status.FAILED:
        data["error"] = {"code": job.error_code, "message": job.error_message}
    data.update(job_notes(job))  # made after the job, by the LLM (notes/)
    if job.interrupted:
        # A live session cut short: its transcript holds what was finalised before.
        data["interrupted"] = {"code": job.error_code, "message": job.error_message}
    return data


def _summary(job: Job) -> dict[str, Any]:
    metrics = job.metrics
    return {
        "language": job.language,
        "duration_sec": metrics.get("audio_duration_s"),
        "processing_time_sec": metrics.get("processing_time_s"),
        "real_time_factor": metrics.get("real_time_factor"),
        "speech_coverage": metrics.get("vad_speech_coverage"),
        "mean_confidence": metrics.get("mean_confidence"),
        # Runs recorded before the served name kept the configured one, a path perhaps.
        "model": model_served_name(name) if (name := job.run.get("model_name")) else name,
        "compute_type": job.run.get("compute_type"),
    }
