"""The batch worker's run of a job: claim it, transcribe, store the result, clean up.

A django-q2 worker calls ``job_process`` (transcription/tasks.py) with the job's id. While
the job runs, a heartbeat thread tells the database the worker is alive, progress and the
segments decoded so far are written at most once a second, and cancel and the duration
limit are checked between segments. Every way a run can end maps to one transition of the
job (see the state machine in transcription/models.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django import db
from django.conf import settings

from glossary.bias import Bias
from glossary.services import job_bias, job_hotword_choice, job_result_post_process
from realtime.models import StreamSegment
from scribe import metrics as scribe_metrics
from scribe.db import retry_transient, transient_errors, unit_of_work
from scribe.processes import this_host
from transcription import storage
from transcription.engine import (
    DevicePlan,
    DevicePlanError,
    EngineError,
    LoadedModel,
    Segment,
    TranscribeOptions,
    Transcript,
    TranscriptionCancelled,
    token_counter,
    transcribe,
)
from transcription.engine.diarization import diarize, diarizer_manager
from transcription.engine.speakers import assign_speakers, transcribe_channels
from transcription.errors import MediaTooLongError
from transcription.lanes import (
    DeviceOverrides,
    device_plan_build,
    model_configured,
    model_load,
    worker_slot,
)
from transcription.models import Job
from transcription.priority import BatchTurn
from transcription.services import job_enqueue, job_files_delete

logger = logging.getLogger(__name__)
PROGRESS_WRITE_INTERVAL_S = 1.0
CANCEL_POLL_INTERVAL_S = 1.0


def job_process(*, job_id: str) -> None:
    """Run one job in this worker process: claim it, transcribe, store, clean up.

    Safe to call twice for the same job (a broker may redeliver): only the caller that
    moves it from queued to processing does the work.
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job.mark_processing(host=this_host(), pid=os.getpid()):
        return
    heartbeat = _Heartbeat(job, settings.SCRIBE_HEARTBEAT_S)
    heartbeat.start()
    callbacks = _JobCallbacks(job)
    try:
        _job_run(job, callbacks)
    except TranscriptionCancelled:
        _job_stopped(job, callbacks)
    except DevicePlanError as exc:
        _job_without_its_device(job, exc)
    except EngineError as exc:
        _job_engine_failed(job, exc)
    except transient_errors() as exc:
        _job_retry_later(job, exc)
    except Exception as exc:
        _job_failed_unexpectedly(job, exc)
    finally:
        heartbeat.stop()
        _job_end(job)


def _job_run(job: Job, callbacks: _JobCallbacks) -> None:
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
            # The run record (the admin's) keeps where the model is; the result does not.
            run={**result["run"], "model_path": transcript.run.model_path},
            metrics=result["metrics"],
        ),
        what=f"job {job.id}: storing its completion",
    )
    if not completed:
        storage.delete_quietly(result_path)  # cancelled or failed meanwhile


def _job_stopped(job: Job, callbacks: _JobCallbacks) -> None:
    """The engine stopped between segments: a cancel, or past the duration limit."""
    if not callbacks.too_long:
        job.mark_cancelled()
        return
    job.mark_failed(
        code=MediaTooLongError.code,
        message=MediaTooLongError(job.processed_s, settings.SCRIBE_MAX_DURATION_S).message,
    )


def _job_without_its_device(job: Job, exc: DevicePlanError) -> None:
    """The job asked for hardware this worker does not have: say so in the API's words
    (the engine's message names the command line's --device)."""
    logger.warning("job %s failed: %s", job.id, exc.message)
    job.mark_failed(
        code=exc.code,
        message=f"The worker cannot run this job on device "
        f"{job.opts.device!r}: it has no such CUDA device. Submit the file "
        'again with "device": "auto" (or without device) to run where the workers can, '
        'or with "cpu".',
    )


def _job_engine_failed(job: Job, exc: EngineError) -> None:
    """Fail the job for good, or put it back in the queue while attempts remain."""
    logger.warning("job %s failed: %s", job.id, exc.message)
    if exc.permanent or job.attempts >= settings.SCRIBE_JOB_MAX_ATTEMPTS:
        job.mark_failed(code=exc.code, message=exc.message)
    elif job.mark_requeued():
        job_enqueue(job=job)


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


def _job_failed_unexpectedly(job: Job, exc: Exception) -> None:
    logger.exception("job %s failed unexpectedly", job.id)
    job.mark_failed(
        code="internal_error",
        message=f"Transcription failed unexpectedly ({type(exc).__name__}: {exc}). "
        "It was logged; retry the job, and tell the operator if it fails again.",
    )


def _job_end(job: Job) -> None:
    """After the run, whichever way it went: if the job ended, delete its audio and
    record it in this worker's metrics."""
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


# --- while the job runs -----------------------------------------------------------------


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


# --- what the engine is asked to do -------------------------------------------------------

_plans: dict[tuple, DevicePlan] = {}


def _model_for(job: Job) -> LoadedModel:
    """The model this worker process uses for ``job``, planned once per process."""
    opts = job.opts
    name = model_configured(opts.model)
    overrides = DeviceOverrides(device=opts.device, compute_type=opts.compute_type)
    key = (name, overrides)
    if key not in _plans:
        _plans[key] = device_plan_build(model=name, overrides=overrides)
    plan = _plans[key]
    return model_load(
        model=name, plan=plan, slot=worker_slot(kind="batch", count=plan.total_workers)
    )


def _options_for(job: Job, bias: Bias) -> TranscribeOptions:
    opts = job.opts
    options = TranscribeOptions(
        language=opts.language,
        hotwords=bias.hotwords,
        # The caller's own prompt first, then the glossary's terms.
        initial_prompt=" ".join(p for p in (opts.prompt, bias.initial_prompt) if p) or None,
        vad=opts.vad,
        word_timestamps=opts.word_timestamps,
        batch_size=opts.batch_size or None,
    )
    # A fixed sampling temperature, as OpenAI's ``temperature`` asks; 0 or none keeps
    # Whisper's fallback (0.0, then higher on a failed decode).
    if opts.temperature:
        options = dataclasses.replace(options, temperature=(float(opts.temperature),))
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
    wanted = job.opts.diarize
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
    limits = {"min_speakers": job.opts.min_speakers, "max_speakers": job.opts.max_speakers}
    turns = diarize(diarizer, source, should_cancel=callbacks.should_cancel, **limits)
    transcript = assign_speakers(transcript, turns)
    if not options.word_timestamps:
        segments = tuple(dataclasses.replace(s, words=None) for s in transcript.segments)
        transcript = dataclasses.replace(transcript, segments=segments)
    decoding = {**transcript.run.decoding, "diarize": True, "diarization_model": diarizer.source}
    return dataclasses.replace(
        transcript, run=dataclasses.replace(transcript.run, decoding={**decoding, **limits})
    )
