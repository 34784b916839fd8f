"""Services of the transcription app: models for a lane, and the life of a job."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django import db
from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import Owner
from glossary.services import Bias, job_bias, job_hotword_choice, job_result_post_process
from scribe.db import unit_of_work
from transcription import storage
from transcription.broker import pending_task_names
from transcription.engine import (
    DevicePlan,
    DevicePlanError,
    EngineError,
    HardwareProfile,
    LoadedModel,
    TranscribeOptions,
    TranscriptionCancelled,
    detect_hardware,
    model_manager,
    model_size,
    plan_devices,
    probe,
    token_counter,
    transcribe,
)
from transcription.errors import MediaTooLongError, QueueFullError
from transcription.models import Job, ServiceSettings

LANES = ("batch", "realtime")


def lane_model_name(lane: str) -> str:
    """Return the model configured for a lane: ``batch`` (accuracy) or ``realtime``."""
    if lane == "batch":
        return settings.SCRIBE_BATCH_MODEL
    if lane == "realtime":
        return settings.SCRIBE_REALTIME_MODEL
    raise ValueError(f"unknown lane {lane!r}: use one of {', '.join(LANES)}")


@dataclass(frozen=True)
class DeviceOverrides:
    device: str | None = None
    compute_type: str | None = None
    workers: int | None = None
    cpu_threads: int | None = None


def device_plan_build(
    *,
    model: str,
    overrides: DeviceOverrides | None = None,
    profile: HardwareProfile | None = None,
) -> DevicePlan:
    """Plan devices for ``model`` from the hardware, settings and command-line overrides."""
    overrides = overrides or DeviceOverrides()
    return plan_devices(
        profile or detect_hardware(),
        model_size(model, models_dir=settings.SCRIBE_MODELS_DIR),
        device=overrides.device or settings.SCRIBE_DEVICE,
        compute_type=overrides.compute_type or settings.SCRIBE_COMPUTE_TYPE,
        workers=overrides.workers or settings.SCRIBE_WORKERS,
        cpu_threads=overrides.cpu_threads or settings.SCRIBE_CPU_THREADS,
        max_workers_per_gpu=settings.SCRIBE_MAX_WORKERS_PER_GPU,
    )


def model_load(*, model: str, plan: DevicePlan, slot: int = 0) -> LoadedModel:
    """Load ``model`` for worker ``slot`` of ``plan`` (slots are spread over its devices)."""
    slots = [a for a in plan.assignments for _ in range(a.workers)]
    assignment = slots[slot % len(slots)]
    loaded = model_manager.get(
        model,
        models_dir=settings.SCRIBE_MODELS_DIR,
        offline=settings.SCRIBE_OFFLINE,
        device=assignment.device,
        device_index=assignment.index,
        compute_type=assignment.compute_type,
        cpu_threads=assignment.cpu_threads,
    )
    # Report what the operator asked for ("auto", "float16"…) beside what runs.
    return dataclasses.replace(loaded, compute_type_requested=plan.compute_type_requested)


# --- jobs -------------------------------------------------------------------------------

logger = logging.getLogger(__name__)
PROGRESS_WRITE_INTERVAL_S = 1.0
QUEUE_LOCK_KEY = 0x5C81BE01  # pg_advisory_xact_lock key of the job queue's admissions
CANCEL_POLL_INTERVAL_S = 1.0


def job_create(*, owner: Owner, upload: TemporaryUploadedFile, options: dict[str, Any]) -> Job:
    """Accept an upload as a queued job: check the queue, probe the media, store, enqueue.

    Raises QueueFullError, MediaError (not audio), MediaTooLongError.
    """
    _queue_admit()  # early and unlocked: a full queue costs no probe and no copy
    source_name = Path(upload.name or "upload").name[:255]
    info = probe(Path(upload.temporary_file_path()), name=source_name)
    if info.duration_s and info.duration_s > settings.SCRIBE_MAX_DURATION_S:
        raise MediaTooLongError(info.duration_s, settings.SCRIBE_MAX_DURATION_S)
    job = Job(
        owner=owner,
        options=options,
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
    """Hand the job to the workers once the surrounding transaction commits."""
    job_id, name = str(job.id), _task_name(job)
    transaction.on_commit(
        lambda: async_task("transcription.tasks.job_run", job_id, task_name=name, group="jobs")
    )


def _task_name(job: Job) -> str:
    """The broker message's name for ``job``: how recovery finds it in the broker."""
    return f"job-{job.id}"


def job_queue_position(*, job: Job) -> int:
    """Number of queued jobs that will be taken before this one."""
    return Job.objects.ahead_of(job).count()


def queue_summary() -> dict[str, Any]:
    """Counts of waiting and running jobs, and how long the oldest has waited."""
    oldest = Job.objects.queued().order_by("created_at").values_list("created_at", flat=True)
    first = oldest.first()
    return {
        "queued": Job.objects.queued().count(),
        "processing": Job.objects.processing().count(),
        "oldest_queued_age_sec": round((timezone.now() - first).total_seconds(), 1)
        if first
        else None,
        "max_queued": settings.SCRIBE_MAX_QUEUED_JOBS,
    }


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
    if job.source_path:
        Job.objects.filter(pk=job.pk).update(source_path="")
        job.source_path = ""


class _Heartbeat(threading.Thread):
    """Tell the database this worker is alive while a job runs, even between segments."""

    def __init__(self, job: Job, interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.job, self.interval_s = job, interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            # A connection per beat, given back after it: none is held idle in between,
            # and one broken by a database restart is replaced at the next beat.
            with unit_of_work():
                self.job.record_heartbeat()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval_s + 5)


class _JobCallbacks:
    """Progress writes at most once a second; cancel and the duration limit, checked at
    most once a second."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last_write = 0.0
        self.last_poll = 0.0
        self.too_long = False

    def on_progress(self, processed_s: float, total_s: float | None) -> None:
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_WRITE_INTERVAL_S:
            self.last_write = now
            self.job.record_progress(processed_s=round(processed_s, 2), total_s=total_s)
        if processed_s > settings.SCRIBE_MAX_DURATION_S:
            self.too_long = True

    def should_cancel(self) -> bool:
        if self.too_long:
            return True
        now = time.monotonic()
        if now - self.last_poll < CANCEL_POLL_INTERVAL_S:
            return False
        self.last_poll = now
        return self.job.cancel_was_requested()


def _options_for(job: Job, bias: Bias) -> TranscribeOptions:
    opts = job.options
    return TranscribeOptions(
        language=opts.get("language") or None,
        hotwords=bias.hotwords,
        initial_prompt=bias.initial_prompt,
        vad=opts.get("vad", True),
        word_timestamps=opts.get("word_timestamps", False),
        batch_size=opts.get("batch_size") or None,
    )


_plans: dict[tuple, DevicePlan] = {}


def _model_for(job: Job) -> LoadedModel:
    """The model this worker process uses for ``job``, planned once per process."""
    opts = job.options
    model = opts.get("model") or "batch"
    name = lane_model_name(model) if model in LANES else model
    overrides = DeviceOverrides(device=opts.get("device"), compute_type=opts.get("compute_type"))
    key = (name, overrides)
    if key not in _plans:
        _plans[key] = device_plan_build(model=name, overrides=overrides)
    plan = _plans[key]
    return model_load(model=name, plan=plan, slot=os.getpid())


def job_process(*, job_id: str) -> None:
    """Run one job in this worker process: claim it, transcribe, store, clean up.

    Safe to call twice for the same job (a broker may redeliver): only the caller that
    moves it from queued to processing does the work.
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job.mark_processing(host=socket.gethostname(), pid=os.getpid()):
        return
    heartbeat = _Heartbeat(job, settings.SCRIBE_HEARTBEAT_S)
    heartbeat.start()
    callbacks = _JobCallbacks(job)
    try:
        loaded = _model_for(job)
        count = token_counter(loaded)
        bias = job_bias(job, count_tokens=count)
        choice = job_hotword_choice(job, count_tokens=count)
        with storage.source_local_path(job.source_path, job.id) as source:
            transcript = transcribe(
                source,
                loaded,
                _options_for(job, bias),
                on_progress=callbacks.on_progress,
                should_cancel=callbacks.should_cancel,
                select_hotwords=choice,
            )
        result = job_result_post_process(job, transcript.to_dict(words=True), bias=bias)
        result_path = storage.result_save(job.id, json.dumps(result, ensure_ascii=False))
        if not job.mark_completed(
            result_path=result_path,
            language=transcript.language,
            run=result["run"],
            metrics=result["metrics"],
        ):
            storage.delete_quietly(result_path)  # cancelled or failed meanwhile
    except TranscriptionCancelled:
        if callbacks.too_long:
            job.mark_failed(
                code=MediaTooLongError.code,
                message=MediaTooLongError(
                    callbacks.job.processed_s, settings.SCRIBE_MAX_DURATION_S
                ).message,
            )
        else:
            job.mark_cancelled()
    except DevicePlanError as exc:
        # The job asked for hardware this worker does not have: say so in the API's words
        # (the engine's message names the command line's --device).
        logger.warning("job %s failed: %s", job.id, exc.message)
        job.mark_failed(
            code=exc.code,
            message=f"The worker cannot run this job on device "
            f"{job.options.get('device')!r}: it has no such CUDA device. Submit the file "
            'again with "device": "auto" (or without device) to run where the workers can, '
            'or with "cpu".',
        )
    except EngineError as exc:
        logger.warning("job %s failed: %s", job.id, exc.message)
        if exc.permanent or job.attempts >= settings.SCRIBE_JOB_MAX_ATTEMPTS:
            job.mark_failed(code=exc.code, message=exc.message)
        elif job.mark_requeued():
            job_enqueue(job=job)
    except Exception as exc:
        logger.exception("job %s failed unexpectedly", job.id)
        job.mark_failed(
            code="internal_error",
            message=f"Transcription failed unexpectedly ({type(exc).__name__}: {exc}). "
            "It was logged; retry the job, and tell the operator if it fails again.",
        )
    finally:
        heartbeat.stop()
        job.refresh_from_db()
        if job.is_terminal:
            job_files_delete(job=job)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def jobs_recover(*, now: datetime | None = None) -> int:
    """Retry (or fail, out of attempts) processing jobs whose worker is gone, and send
    again the queued jobs whose broker message was lost.

    A worker is gone when its heartbeat is older than SCRIBE_STALE_AFTER_S, or at once when
    it ran on this host and its process no longer exists (SIGKILL, OOM killer).
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SCRIBE_STALE_AFTER_S)
    host = socket.gethostname()
    recovered = 0
    for job in Job.objects.processing():
        dead_here = job.worker_host == host and job.worker_pid and not _pid_alive(job.worker_pid)
        stale = job.heartbeat_at is None or job.heartbeat_at < stale_before
        if not (dead_here or stale):
            continue
        recovered += 1
        if job.kind == Job.Kind.STREAM:
            from realtime.services import stream_job_recover

            stream_job_recover(job=job)
            continue
        worker = f"{job.worker_host}/{job.worker_pid}"  # before a transition clears them
        if job.cancel_requested_at is not None:
            ended = job.mark_cancelled()
        elif job.attempts >= settings.SCRIBE_JOB_MAX_ATTEMPTS:
            ended = job.mark_failed(
                code="worker_lost",
                message=f"The worker processing this job stopped {job.attempts} times "
                "(killed or out of memory). Try a shorter file, or ask the operator to check "
                "the worker's memory.",
            )
        else:
            if job.mark_requeued():
                logger.warning("job %s: worker %s is gone; retrying", job.id, worker)
                job_enqueue(job=job)
            # Requeued here or by a concurrent recovery: either way its audio is needed.
            continue
        if ended:
            logger.warning("job %s: worker %s is gone; job %s", job.id, worker, job.status)
            job_files_delete(job=job)
    return recovered + jobs_resend_lost(now=now)


def jobs_resend_lost(*, now: datetime | None = None) -> int:
    """Send again the queued jobs that have waited SCRIBE_REQUEUE_AFTER_S with no message
    in the broker (Redis flushed, or restarted without persistence).

    Idempotent: concurrent recoveries resend a job once (``mark_resent`` is conditional),
    and a job whose message turns out not to be lost runs once (only one worker can claim
    it). Returns the number of jobs sent again.
    """
    now = now or timezone.now()
    waiting = list(
        Job.objects.sent_before(now - timedelta(seconds=settings.SCRIBE_REQUEUE_AFTER_S))
    )
    if not waiting:
        return 0
    pending = pending_task_names()
    resent = 0
    for job in waiting:
        if pending is not None and _task_name(job) in pending:
            continue
        if job.mark_resent(now=now):
            logger.warning(
                "job %s: queued since %s with no message in the broker; sending it again",
                job.id,
                job.created_at.isoformat(),
            )
            job_enqueue(job=job)
            resent += 1
    return resent


def job_results_purge(*, now: datetime | None = None) -> int:
    """Delete the results of terminal jobs older than the retention period.

    Queued and processing jobs are never touched. Returns the number of results deleted.
    """
    now = now or timezone.now()
    cutoff = now - ServiceSettings.current().retention()
    purged = 0
    for job in Job.objects.finished_before(cutoff).filter(result_purged_at__isnull=True):
        storage.delete_quietly(job.result_path)
        job_files_delete(job=job)  # a crash may have left audio behind
        Job.objects.filter(pk=job.pk).update(result_path="", result_purged_at=now)
        purged += 1
    return purged
