"""Services of the transcription app: models for a lane, and the life of a job."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from accounts.models import Owner
from glossary.bias import Bias
from glossary.services import job_bias, job_hotword_choice, job_result_post_process
from realtime.models import StreamSegment
from scribe import metrics as scribe_metrics
from scribe.db import retry_transient, transient_errors, unit_of_work
from scribe.processes import pid_alive
from transcription import storage
from transcription.broker import pending_task_names
from transcription.engine import (
    DevicePlan,
    DevicePlanError,
    EngineError,
    HardwareProfile,
    LoadedModel,
    ModelNotFoundError,
    Segment,
    TranscribeOptions,
    Transcript,
    TranscriptionCancelled,
    detect_hardware,
    model_manager,
    probe,
    resolve_model,
    token_counter,
    transcribe,
)
from transcription.engine.diarization import diarize, diarizer_manager
from transcription.engine.speakers import assign_speakers, transcribe_channels
from transcription.errors import ChannelsNeededError, MediaTooLongError, QueueFullError
from transcription.models import Job, ServiceSettings
from transcription.placement import device_lanes_build, worker_slot
from transcription.priority import BatchTurn

LANES = ("batch", "realtime")

# What the queue broker raises when it cannot take a message now (Redis down or
# restarting); the database keeps the job, and recovery sends it again.
BROKER_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)


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
    lane: str = "batch",
) -> DevicePlan:
    """Plan devices for ``model`` in ``lane`` from the hardware, settings and command-line
    overrides, sharing each GPU with the other lane (transcription/placement.py)."""
    overrides = overrides or DeviceOverrides()
    lanes = device_lanes_build(
        batch_model=model if lane == "batch" else None,
        device=overrides.device,
        compute_type=overrides.compute_type,
        workers=overrides.workers,
        cpu_threads=overrides.cpu_threads,
        profile=profile,
        realtime=True if lane == "realtime" else None,
    )
    plan = lanes.batch if lane == "batch" else lanes.realtime
    assert plan is not None  # the realtime lane is planned when asked for
    return plan


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
        # A worker keeps what its share of the plan holds: on a GPU one model of this size.
        max_loaded=settings.SCRIBE_MAX_LOADED_MODELS,
        footprint_mb=assignment.footprint_mb,
        vram_budget_mb=assignment.footprint_mb,
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
    if options.get("diarize") == "channels" and info.channels < 2:
        raise ChannelsNeededError(info.channels)
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
    """Hand the job to the workers once the surrounding transaction commits.

    The database, not the broker, is the queue's source of truth: when the broker cannot
    take the message (Redis restarting), the job stays queued and recovery sends it again
    after SCRIBE_REQUEUE_AFTER_S, so the caller is not failed for it.
    """
    job_id, name = str(job.id), _task_name(job)

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


def system_status() -> dict[str, Any]:
    """What an operator needs at a glance: hardware, plan, workers, queue, models."""
    from django_q.status import Stat

    from scribe.metrics import loaded_models

    profile = detect_hardware()
    status: dict[str, Any] = {
        "device": dataclasses.asdict(profile),
        "free_vram_mb": {f"cuda:{g.index}": g.free_vram_mb for g in profile.gpus},
        "queue": queue_summary(),
    }
    try:
        plan = device_plan_build(model=lane_model_name("batch"), profile=profile)
        status["plan"] = {**dataclasses.asdict(plan), "total_workers": plan.total_workers}
    except EngineError as exc:
        status["plan"] = {"error": exc.message}
    try:
        # Cluster statistics live in the broker's cache: shared with Redis, per process
        # (so invisible here) with the embedded ORM broker.
        clusters = [
            {
                "cluster_id": str(stat.cluster_id),
                "host": stat.host,
                "status": stat.status,
                "workers": len(stat.workers),
                "uptime_s": round(stat.uptime(), 1),
            }
            for stat in Stat.get_all()
        ]
    except Exception as exc:  # the broker is down: say so, keep the rest of the page
        clusters = [{"error": f"cluster statistics unavailable: {exc}"}]
    status["workers"] = {
        "batch_clusters": clusters,
        "busy": [
            {"host": host, "pid": pid}
            for host, pid in Job.objects.processing()
            .values_list("worker_host", "worker_pid")
            .distinct()
        ],
        "realtime": {
            "in_web_process": settings.SCRIBE_REALTIME_IN_PROCESS,
            "channel": settings.SCRIBE_REALTIME_CHANNEL,
        },
    }
    lanes = []
    for lane in LANES:
        name = lane_model_name(lane)
        try:
            path: str | None = str(
                resolve_model(name, models_dir=settings.SCRIBE_MODELS_DIR, offline=True).path
            )
            problem = None
        except ModelNotFoundError as exc:
            path, problem = None, exc.message
        lanes.append({"lane": lane, "model": name, "path": path, "problem": problem})
    status["models"] = {"lanes": lanes, "loaded": loaded_models()}
    return status


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
            try:
                with unit_of_work():
                    self.job.record_heartbeat()
            except transient_errors() as exc:  # the next beat tries again
                logger.warning("job %s: heartbeat not written (%s)", self.job.id, exc)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval_s + 5)


class _JobCallbacks:
    """Progress writes at most once a second; cancel and the duration limit, checked at
    most once a second.

    The segments decoded since the last write are written with it, as the job's partial
    segments (``job.stream_segments``, the table live sessions keep their finals in): the
    database is what every process sees, on SQLite as on PostgreSQL, so a web process can
    stream them (the OpenAI endpoint's ``stream=true``) while the job runs.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last_write = 0.0
        self.last_poll = 0.0
        self.too_long = False
        self.pending: list[Segment] = []

    def on_segment(self, segment: Segment) -> None:
        self.pending.append(segment)

    def on_progress(self, processed_s: float, total_s: float | None) -> None:
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_WRITE_INTERVAL_S:
            self.last_write = now
            try:
                self._write_partials()
                self.job.record_progress(processed_s=round(processed_s, 2), total_s=total_s)
            except transient_errors() as exc:  # progress is written again a second later
                logger.warning("job %s: progress not written (%s)", self.job.id, exc)
                db.connection.close()  # the next write takes a fresh connection
        if processed_s > settings.SCRIBE_MAX_DURATION_S:
            self.too_long = True

    def _write_partials(self) -> None:
        if not self.pending:
            return
        StreamSegment.objects.bulk_create(
            [
                StreamSegment(
                    job_id=self.job.pk,
                    index=s.id,
                    start=s.start,
                    end=s.end,
                    text=s.text.strip(),
                    raw_text=s.text.strip(),
                    confidence=round(s.confidence, 4),
                    avg_logprob=s.avg_logprob,
                    compression_ratio=s.compression_ratio,
                )
                for s in self.pending
            ]
        )
        self.pending = []  # kept when the write failed: sent with the next one

    def should_cancel(self) -> bool:
        if self.too_long:
            return True
        now = time.monotonic()
        if now - self.last_poll < CANCEL_POLL_INTERVAL_S:
            return False
        self.last_poll = now
        try:
            return self.job.cancel_was_requested()
        except transient_errors():
            return False  # asked again at the next poll


def _options_for(job: Job, bias: Bias) -> TranscribeOptions:
    opts = job.options
    options = TranscribeOptions(
        language=opts.get("language") or None,
        hotwords=bias.hotwords,
        # The caller's own prompt first, then the glossary's terms.
        initial_prompt=" ".join(p for p in (opts.get("prompt"), bias.initial_prompt) if p) or None,
        vad=opts.get("vad", True),
        word_timestamps=opts.get("word_timestamps", False),
        batch_size=opts.get("batch_size") or None,
    )
    # A fixed sampling temperature, as OpenAI's ``temperature`` asks; 0 or none keeps
    # Whisper's fallback (0.0, then higher on a failed decode).
    if opts.get("temperature"):
        options = dataclasses.replace(options, temperature=(float(opts["temperature"]),))
    return options


def _transcript_for(
    job: Job,
    source: Path,
    loaded: LoadedModel,
    options: TranscribeOptions,
    callbacks: _JobCallbacks,
    choice: Callable[[str], str | None] | None,
) -> Transcript:
    """Transcribe the job's file, with speakers where its ``diarize`` option asks."""
    hooks: dict[str, Any] = {
        "on_progress": callbacks.on_progress,
        "on_segment": callbacks.on_segment,
        "should_cancel": callbacks.should_cancel,
        "select_hotwords": choice,
        "wait_turn": BatchTurn(),
    }
    wanted = job.options.get("diarize", False)
    if wanted == "channels":
        return transcribe_channels(source, loaded, options, **hooks)
    if wanted is not True:
        return transcribe(source, loaded, options, **hooks)
    # Loaded first: a worker without pyannote or its weights fails the job at once, not
    # after the transcription.
    diarizer = diarizer_manager.get(
        settings.SCRIBE_DIARIZATION_MODEL,
        models_dir=settings.SCRIBE_MODELS_DIR,
        offline=settings.SCRIBE_OFFLINE,
        token=settings.SCRIBE_DIARIZATION_TOKEN or None,
        device=loaded.device,
        device_index=loaded.device_index,
    )
    # Word timings place a speaker change inside a segment.
    timed = dataclasses.replace(options, word_timestamps=True)
    transcript = transcribe(source, loaded, timed, **hooks)
    limits = {k: job.options.get(k) for k in ("min_speakers", "max_speakers")}
    turns = diarize(diarizer, source, should_cancel=callbacks.should_cancel, **limits)
    transcript = assign_speakers(transcript, turns)
    if not options.word_timestamps:
        segments = tuple(dataclasses.replace(s, words=None) for s in transcript.segments)
        transcript = dataclasses.replace(transcript, segments=segments)
    decoding = {**transcript.run.decoding, "diarize": True, "diarization_model": diarizer.source}
    return dataclasses.replace(
        transcript, run=dataclasses.replace(transcript.run, decoding={**decoding, **limits})
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
    return model_load(
        model=name, plan=plan, slot=worker_slot(kind="batch", count=plan.total_workers)
    )


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
        job.stream_segments.all().delete()  # partial segments of an attempt that died
        loaded = _model_for(job)
        count = token_counter(loaded)
        bias = job_bias(job, count_tokens=count)
        choice = job_hotword_choice(job, count_tokens=count)
        with storage.source_local_path(job.source_path, job.id) as source:
            transcript = _transcript_for(
                job, source, loaded, _options_for(job, bias), callbacks, choice
            )
        result = job_result_post_process(job, transcript.to_dict(words=True), bias=bias)
        result_path = storage.result_save(job.id, json.dumps(result, ensure_ascii=False))
        # Hours of work end here: a database blip must not throw them away.
        completed = retry_transient(
            lambda: job.mark_completed(
                result_path=result_path,
                language=transcript.language,
                run=result["run"],
                metrics=result["metrics"],
            ),
            what=f"job {job.id}: storing its completion",
        )
        if not completed:
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
    except transient_errors() as exc:
        _job_retry_later(job, exc)
    except Exception as exc:
        logger.exception("job %s failed unexpectedly", job.id)
        job.mark_failed(
            code="internal_error",
            message=f"Transcription failed unexpectedly ({type(exc).__name__}: {exc}). "
            "It was logged; retry the job, and tell the operator if it fails again.",
        )
    finally:
        heartbeat.stop()
        try:
            job.refresh_from_db()
            if job.is_terminal:
                job_files_delete(job=job)
                _job_observe(job)
        except transient_errors():
            pass  # the job is not ended by this worker; recovery or a retry will end it


def _job_observe(job: Job) -> None:
    """Record a finished job in this worker process's Prometheus metrics."""
    duration = (
        (job.finished_at - job.started_at).total_seconds()
        if job.finished_at and job.started_at
        else None
    )
    scribe_metrics.job_finished(status=job.status, duration_s=duration, metrics=job.metrics)


def _job_retry_later(job: Job, exc: BaseException) -> None:
    """A transient database error stopped the job: put it back in the queue while
    attempts remain, rather than failing it for good. When the database is still
    unreachable the job stays processing, and recovery retries it once its heartbeat is
    stale."""
    logger.warning("job %s stopped by a database error (%s); retrying it", job.id, exc)
    try:
        if job.attempts >= settings.SCRIBE_JOB_MAX_ATTEMPTS:
            retry_transient(
                lambda: job.mark_failed(
                    code="service_unavailable",
                    message=f"The database failed {job.attempts} times while this job ran "
                    f"({exc}). Submit the file again; tell the operator if it persists.",
                ),
                what=f"job {job.id}: failing it",
            )
        elif retry_transient(job.mark_requeued, what=f"job {job.id}: requeueing it"):
            job_enqueue(job=job)
    except transient_errors():
        logger.warning("job %s: left for recovery (the database is still unreachable)", job.id)


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
        dead_here = job.worker_host == host and job.worker_pid and not pid_alive(job.worker_pid)
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
        result_path = job.result_path
        if not job.purge_result(now=now):
            continue  # another purge took it
        storage.delete_quietly(result_path)
        job.stream_segments.all().delete()  # a live session's finals are its transcript too
        job_files_delete(job=job)  # a crash may have left audio behind
        purged += 1
    return purged
