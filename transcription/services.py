"""Services of the job app: a job's admission (create, enqueue), cancel, and its files.

The worker's run of a job is transcription/runner.py, recovery of lost ones
transcription/recovery.py, erasure and retention transcription/erasure.py, reads
transcription/selectors.py, lanes transcription/lanes.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django import db
from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from accounts.models import Owner
from notes.services import notes_request
from scribe.db import transient_errors
from transcription import storage
from transcription.engine import probe
from transcription.errors import ChannelsNeededError, MediaTooLongError, QueueFullError
from transcription.models import Job
from transcription.options import JobOptions

logger = logging.getLogger(__name__)
QUEUE_LOCK_KEY = 0x5C81BE01  # pg_advisory_xact_lock key of the job queue's admissions

# What the queue broker raises when it cannot take a message now (Redis down or
# restarting); the database keeps the job, and recovery sends it again.
BROKER_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)


def job_create(*, owner: Owner, upload: TemporaryUploadedFile, options: JobOptions) -> Job:
    """Accept an upload as a queued job: check the queue, probe the media, store, enqueue.

    Raises QueueFullError, MediaError (not audio), MediaTooLongError.
    """
    _queue_admit()  # early and unlocked: a full queue costs no probe and no copy
    source_name = Path(upload.name or "upload").name[:255]
    info = probe(Path(upload.temporary_file_path()), name=source_name)
    if info.duration_s and info.duration_s > settings.SCRIBE_MAX_DURATION_S:
        raise MediaTooLongError(info.duration_s, settings.SCRIBE_MAX_DURATION_S)
    if options.diarize == "channels" and info.channels < 2:
        raise ChannelsNeededError(info.channels)
    job = Job(
        owner=owner,
        options=options.stored(),
        source_name=source_name,
        media_format=info.container[:100],
        media_size_bytes=info.size_bytes,
        media_duration_s=info.duration_s,
        total_s=info.duration_s,
        enqueued_at=timezone.now(),
    )
    # Copying to storage is slow I/O (S3 in production): done before, not inside, the
    # transaction; the file is removed again if the row cannot be written.
    job.source_path = storage.source_save(job.id, job.source_name, upload)
    try:
        with transaction.atomic():
            # Count and insert under one lock, or concurrent uploads overshoot the cap.
            _queue_lock()
            _queue_admit()
            job.save(force_insert=True)
            notes_request(job=job, options=options)  # made after the transcript
            job_enqueue(job=job)
    except Exception:
        storage.job_audio_delete(job.id, job.source_path)
        raise
    return job


def _queue_admit() -> None:
    depth = Job.objects.queued().count()
    if depth >= settings.SCRIBE_MAX_QUEUED_JOBS:
        raise QueueFullError(depth, retry_after_s=_retry_after_s())


def _queue_lock() -> None:
    """Serialise admissions to the queue until the surrounding transaction ends."""
    if db.connection.vendor == "postgresql":
        with db.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [QUEUE_LOCK_KEY])
    # SQLite: the transaction began IMMEDIATE (settings), which already holds the write
    # lock, so admissions are serialised.


def _retry_after_s() -> int:
    """Guess when a slot frees up: the median run time of recent jobs, at least 10 s."""
    recent = list(
        Job.objects.filter(
            status=Job.Status.COMPLETED, started_at__isnull=False, finished_at__isnull=False
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:20]
    )
    if not recent:
        return 30
    durations = sorted((end - start).total_seconds() for start, end in recent if start and end)
    return max(10, round(durations[len(durations) // 2]))


def job_enqueue(*, job: Job) -> None:
    """Hand the job to the workers once the surrounding transaction commits.

    The database, not the broker, is the queue's source of truth: when the broker cannot
    take the message (Redis restarting), the job stays queued and recovery sends it again
    after SCRIBE_REQUEUE_AFTER_S, so the caller is not failed for it.
    """
    job_id, name = str(job.id), job_task_name(job)

    def send() -> None:
        try:
            async_task("transcription.tasks.job_run", job_id, task_name=name, group="jobs")
        except (*BROKER_ERRORS, *transient_errors()) as exc:  # the ORM broker is the DB
            logger.warning(
                "job %s: the queue broker refused it (%s); recovery sends it again within %s s",
                job_id,
                exc,
                settings.SCRIBE_REQUEUE_AFTER_S,
            )

    transaction.on_commit(send)


def job_task_name(job: Job) -> str:
    """The broker message's name for ``job``: how recovery finds it in the broker."""
    return f"job-{job.id}"


def job_cancel(*, job: Job) -> Job:
    """Cancel a queued job now, or ask a processing one to stop at its next segment."""
    if job.cancel_queued():
        job_files_delete(job=job)
    else:
        job.request_cancel()  # only takes if a worker has it; a finished job stays as it is
    job.refresh_from_db()
    return job


def job_files_delete(*, job: Job) -> None:
    """Delete the source audio and every derived file of a job (not its result)."""
    storage.job_audio_delete(job.id, job.source_path)
    if job.kind == Job.Kind.FILE:  # a live session's finals are its transcript
        job.stream_segments.all().delete()  # partial segments: the result has them now
    if job.source_path:
        Job.objects.filter(pk=job.pk).update(source_path="")
        job.source_path = ""
