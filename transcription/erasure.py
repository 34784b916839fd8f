"""Erasure and retention: what of a job is kept, and for how long (docs/data.md).

A job's *content* is what was said or chosen by its caller: the transcript (result file,
live finals, partial segments), the run record's text (a glossary job's first-pass and
survey hearings, the prompt and hotwords it decoded with), the source file and its name,
the options' prompt, hotwords and callback URL, and an error message that may quote them.
Erasing a job removes all of it, and other apps' copies (``job_erased``: webhook bodies),
and keeps a content-free record (status, times, durations, the model) until the record
retention deletes the row.

- ``DELETE /v1/jobs/{id}`` (``job_erase``): a finished job is erased at once; a queued or
  processing one is cancelled and erased when it stops (``job_ended``, sent after every
  terminal transition; ``erasures_finish`` catches one a crash left behind).
- Retention (``retention_purge``, hourly): results older than the retention period are
  erased the same way, and records older than ``SCRIBE_RECORD_RETENTION_DAYS`` deleted.
- ``manage.py forget --owner NAME`` (``owner_forget``): every job of an owner.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.audit import denied_purge
from accounts.models import Owner
from transcription import storage
from transcription.models import Job, JobEvent, ServiceSettings, job_erased
from transcription.services import job_cancel, job_files_delete

logger = logging.getLogger(__name__)

# The run record's fields that say what ran, not what was heard (transcription/engine/
# types.py RunRecord); its ``decoding`` keeps only numbers, flags and languages.
RUN_FIELDS_KEPT = (
    "pipeline_version",
    "model_name",
    "model_checksum",
    "device",
    "device_index",
    "compute_type_requested",
    "compute_type",
    "cpu_threads",
    "library_versions",
)
DECODING_TEXT_KEPT = ("language", "language_used", "task")


def job_erase(*, job: Job) -> Job:
    """The owner's DELETE: erase a finished job now; cancel a queued or processing one and
    erase it when it stops. Returns the job as it is afterwards (``erased_at`` set, or
    ``erase_requested_at`` while it is still stopping)."""
    if not job.is_terminal:
        job.request_erase()
        job = job_cancel(job=job)  # a queued job ends here, and is erased on commit
    if job.is_terminal:
        job_content_erase(job=job)
    job.refresh_from_db()
    return job


def job_content_erase(*, job: Job, now: datetime | None = None, purged: bool = False) -> bool:
    """Erase a terminal job's content (see the module docstring); False if it is not
    terminal or was erased already. ``purged``: by retention."""
    now = now or timezone.now()
    job.refresh_from_db()
    result_path = job.result_path
    if not job.mark_erased(now=now, content_free=_content_free(job), purged=purged):
        return False
    storage.delete_quietly(result_path)
    job.stream_segments.all().delete()  # a live session's finals, a file job's partials
    job_files_delete(job=job)
    job_erased.send(sender=Job, job_id=job.pk)
    return True


def _content_free(job: Job) -> dict[str, Any]:
    """The row's columns with the content taken out."""
    options = job.opts.without_content().stored(live=job.kind == Job.Kind.STREAM)
    run = {name: job.run[name] for name in RUN_FIELDS_KEPT if name in job.run}
    decoding = job.run.get("decoding")
    if isinstance(decoding, dict):
        run["decoding"] = {
            name: value
            for name, value in decoding.items()
            if isinstance(value, bool | int | float)
            or value is None
            or (name in DECODING_TEXT_KEPT and isinstance(value, str))
        }
    return {"options": options, "source_name": "", "error_message": "", "run": run}


def job_erase_if_requested(sender, *, job_id, **kwargs) -> None:
    """``job_ended``'s receiver: erase a job whose owner asked for it while it ran."""
    job = Job.objects.erase_pending().filter(pk=job_id).first()
    if job is not None:
        job_content_erase(job=job)


def erasures_finish() -> int:
    """Erase the ended jobs whose erasure was asked but not done (a process died between
    the job's end and its erasure). Run with recovery, every minute."""
    return sum(job_content_erase(job=job) for job in Job.objects.erase_pending())


def retention_purge(*, now: datetime | None = None) -> tuple[int, int]:
    """Erase the jobs that ended before the result retention period, delete the records
    (rows) older than the record retention, the job events handled before the first and the
    refused-request audit rows older than the second.

    Queued and processing jobs are never touched. Returns (jobs erased, records deleted).
    """
    now = now or timezone.now()
    cutoff = now - ServiceSettings.current().retention()
    JobEvent.objects.filter(handled_at__lt=cutoff).delete()
    erased = 0
    for job in Job.objects.finished_before(cutoff).filter(erased_at__isnull=True):
        erased += job_content_erase(job=job, now=now, purged=True)
    record_cutoff = now - timedelta(days=settings.SCRIBE_RECORD_RETENTION_DAYS)
    denied_purge(before=record_cutoff)
    deleted = 0
    for job in Job.objects.finished_before(record_cutoff):
        deleted += _record_delete(job, now=now)
    return erased, deleted


def _record_delete(job: Job, *, now: datetime) -> bool:
    """Delete a terminal job's row (and its segments, events and deliveries with it), its
    files first."""
    job_content_erase(job=job, now=now)
    with transaction.atomic():
        deleted, _ = Job.objects.terminal().filter(pk=job.pk).delete()
    return bool(deleted)


def owner_forget(*, owner: Owner) -> tuple[int, int]:
    """Erase every job of ``owner`` and delete the records of those that ended (their
    webhook logs go with them); cancel the running ones, erased when they stop. Returns
    (records deleted, jobs still stopping)."""
    deleted = stopping = 0
    for job in Job.objects.for_owner(owner):
        job = job_erase(job=job)
        if job.is_terminal:
            deleted += _record_delete(job, now=timezone.now())
        else:
            stopping += 1
    return deleted, stopping
