"""Jobs: every transcription, a file upload or a live stream, is a row here."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone
from django_q.tasks import async_task

from transcription.options import JobOptions

# The task that reacts to a job's end (its callback): named by its dotted path, which
# django-q2 resolves in the worker, so the job app does not import the webhooks app. The
# webhooks app also sweeps unhandled events every minute, so an event whose message is
# lost (the process died after the commit, the broker was down) is still handled.
JOB_EVENT_TASK = "webhooks.tasks.job_event_deliver"

# Sent once the transaction of a job's terminal transition commits (``job_id``): the job
# app erases a job whose owner asked for it while it ran (transcription/erasure.py).
job_ended = Signal()
# Sent when a job's content has been erased (``job_id``): apps that keep a copy of it
# erase theirs (webhooks: the delivery bodies).
job_erased = Signal()


class JobQuerySet(models.QuerySet):
    def for_owner(self, owner) -> JobQuerySet:
        return self.filter(owner=owner)

    def queued(self) -> JobQuerySet:
        return self.filter(status=Job.Status.QUEUED)

    def processing(self) -> JobQuerySet:
        return self.filter(status=Job.Status.PROCESSING)

    def terminal(self) -> JobQuerySet:
        return self.filter(status__in=Job.TERMINAL)

    def with_sent_at(self) -> JobQuerySet:
        """Annotate ``sent_at``: when the job's message last went to the broker, whose
        queue is first in, first out (a requeued or resent job is at its back)."""
        return self.annotate(sent_at=Coalesce("enqueued_at", "created_at"))  # before 0002

    def ahead_of(self, job: Job) -> JobQuerySet:
        """Queued jobs that will be taken before ``job``: those sent to the broker before it."""
        sent_at = job.enqueued_at or job.created_at
        return (
            self.queued()
            .with_sent_at()
            .filter(models.Q(sent_at__lt=sent_at) | models.Q(sent_at=sent_at, id__lt=job.id))
        )

    def with_jobs_ahead(self) -> JobQuerySet:
        """Annotate ``jobs_ahead`` (as ``ahead_of`` counts it) on queued jobs, None on others.

        A correlated subquery in the same SELECT: a page of jobs costs one query, not one
        count per queued row.
        """
        sent_at = Coalesce(models.OuterRef("enqueued_at"), models.OuterRef("created_at"))
        ahead = (
            Job.objects.queued()
            .with_sent_at()
            .filter(
                models.Q(sent_at__lt=sent_at)
                | models.Q(sent_at=sent_at, id__lt=models.OuterRef("id"))
            )
            .order_by()
            .values("status")  # one group: all are queued
            .annotate(n=models.Count("pk"))
            .values("n")
        )
        return self.annotate(
            jobs_ahead=models.Case(
                models.When(
                    status=Job.Status.QUEUED,
                    then=Coalesce(models.Subquery(ahead), models.Value(0)),
                ),
                default=None,
                output_field=models.IntegerField(null=True),
            )
        )

    def sent_before(self, moment: datetime) -> JobQuerySet:
        """Queued file jobs whose message went to the broker before ``moment``."""
        return self.queued().filter(
            models.Q(enqueued_at__lt=moment)
            | models.Q(enqueued_at__isnull=True, created_at__lt=moment),  # queued before 0002
            kind=Job.Kind.FILE,
        )

    def finished_before(self, moment: datetime) -> JobQuerySet:
        return self.terminal().filter(finished_at__lt=moment)

    def erase_pending(self) -> JobQuerySet:
        """Ended jobs whose owner asked to erase them and whose content is still here."""
        return self.terminal().filter(erase_requested_at__isnull=False, erased_at__isnull=True)


class Job(models.Model):
    """One transcription and its life cycle.

    States and the only legal transitions::

        queued ──> processing ──> completed
          │            │    ├───> completed, interrupted   (a live stream cut short)
          │            │    └───> failed
          │            ├────────> cancelled   (cancel seen at a segment boundary)
          │            └────────> queued      (worker died; retried while attempts remain)
          ├──> queued                              (its broker message was lost: sent again)
          ├──────────────────────> cancelled  (cancelled before a worker took it)
          └──────────────────────> failed     (could not be started)
        start_stream ──> processing            (a live session's job starts there)
        terminal ──> terminal, erased          (its owner's DELETE, or retention)

    Erasure removes the content (what was said or chosen by the caller: transcript, run
    record text, segments, file name, prompt, hotwords, error message) and keeps a
    content-free record (status, times, durations) until the record retention deletes
    the row; transcription/erasure.py does it.

    completed, failed and cancelled are terminal. Transitions are conditional updates
    (``UPDATE … WHERE status = …``) so a web request and a worker racing on the same job
    cannot both win; each returns whether this caller made it. The source audio is deleted
    by the caller whose transition ended the job, and only then. A transition to a terminal
    state writes a ``JobEvent`` in its transaction: what other apps (webhooks) react to.
    """

    class Kind(models.TextChoices):
        FILE = "file"
        STREAM = "stream"

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    # error_code of a completed live session that was cut short.
    INTERRUPTED = "interrupted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey("accounts.Owner", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FILE)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    options = models.JSONField(default=dict, blank=True)

    source_name = models.CharField(max_length=255, blank=True)  # the caller's file name
    source_path = models.CharField(max_length=500, blank=True)  # storage name; "" once deleted
    media_format = models.CharField(max_length=100, blank=True)
    media_size_bytes = models.BigIntegerField(null=True, blank=True)
    media_duration_s = models.FloatField(null=True, blank=True)

    processed_s = models.FloatField(default=0.0)
    total_s = models.FloatField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # When the last message for this job went to the broker (recovery resends lost ones).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)

    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)

    result_path = models.CharField(max_length=500, blank=True)  # storage name of result json
    result_purged_at = models.DateTimeField(null=True, blank=True)
    # Erasure: asked (DELETE while the job ran, done when it stops) and done.
    erase_requested_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True, db_index=True)
    language = models.CharField(max_length=16, blank=True)
    run = models.JSONField(default=dict, blank=True)  # the engine's run record
    metrics = models.JSONField(default=dict, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def opts(self) -> JobOptions:
        """What the caller asked, as a frozen ``JobOptions`` (``options`` is its stored JSON)."""
        return JobOptions.from_stored(self.options, live=self.kind == self.Kind.STREAM)

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def progress_percent(self) -> float | None:
        if not self.total_s:
            return None
        return round(min(100.0, 100.0 * self.processed_s / self.total_s), 1)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far; None before there is a pace to go by."""
        if self.status != self.Status.PROCESSING or not self.started_at or not self.total_s:
            return None
        if self.processed_s <= 0:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        remaining = max(0.0, self.total_s - self.processed_s)
        return round(elapsed / self.processed_s * remaining, 1)

    # --- transitions (conditional updates; see the class docstring) -------------------

    def _transition(self, allowed: tuple[str, ...], **changes) -> bool:
        return self._transition_where({"status__in": allowed}, **changes)

    def _transition_where(self, where: dict, **changes) -> bool:
        ending = changes.get("status") in self.TERMINAL
        # Every path to a terminal state passes here, once, in the caller that won: its
        # event is written in the same transaction, so a job never ends unrecorded.
        with transaction.atomic() if ending else nullcontext():
            updated = Job.objects.filter(pk=self.pk, **where).update(**changes)
            if updated and ending:
                JobEvent.record(job_id=self.pk, status=changes["status"])
                job_id = self.pk
                transaction.on_commit(
                    lambda: job_ended.send(sender=Job, job_id=job_id), robust=True
                )
        if updated:
            for field, value in changes.items():
                setattr(self, field, value)
        return bool(updated)

    @classmethod
    def start_stream(cls, *, owner_id: int, options: JobOptions, host: str, pid: int) -> Job:
        """A live session's job: it starts processing, held by the realtime worker."""
        now = timezone.now()
        return cls.objects.create(
            owner_id=owner_id,
            kind=cls.Kind.STREAM,
            status=cls.Status.PROCESSING,
            options=options.stored(live=True),
            source_name="live stream",
            started_at=now,
            heartbeat_at=now,
            attempts=1,
            worker_host=host,
            worker_pid=pid,
        )

    def mark_processing(self, *, host: str, pid: int) -> bool:
        """Claim a queued job for this worker; False if someone else has it or it ended."""
        now = timezone.now()
        claimed = Job.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.PROCESSING,
            started_at=now,
            heartbeat_at=now,
            attempts=models.F("attempts") + 1,
            worker_host=host,
            worker_pid=pid,
        )
        if claimed:
            self.refresh_from_db()
        return bool(claimed)

    def mark_completed(
        self,
        *,
        result_path: str,
        language: str,
        run: dict,
        metrics: dict,
        error_code: str = "",
        error_message: str = "",
    ) -> bool:
        """End a processing job with its result (``error_*`` only say why a completed
        job's transcript is partial: see ``mark_interrupted``)."""
        duration = metrics.get("audio_duration_s", 0.0)
        return self._transition(
            (self.Status.PROCESSING,),
            status=self.Status.COMPLETED,
            finished_at=timezone.now(),
            result_path=result_path,
            language=language,
            run=run,
            metrics=metrics,
            processed_s=duration,
            total_s=duration,
            error_code=error_code,
            error_message=error_message,
        )

    def mark_interrupted(
        self, *, result_path: str, language: str, run: dict, metrics: dict, reason: str
    ) -> bool:
        """Complete a live session that was cut short (its worker stopped): the transcript
        holds what was finalised, and ``reason`` says why the rest is missing."""
        return self.mark_completed(
            result_path=result_path,
            language=language,
            run=run,
            metrics=metrics,
            error_code=self.INTERRUPTED,
            error_message=reason,
        )

    @property
    def interrupted(self) -> bool:
        return self.status == self.Status.COMPLETED and self.error_code == self.INTERRUPTED

    def request_erase(self) -> bool:
        """Ask that the job be erased when it ends; False if that was asked already."""
        return self._transition_where(
            {"erase_requested_at__isnull": True}, erase_requested_at=timezone.now()
        )

    def mark_erased(self, *, now: datetime, content_free: dict, purged: bool = False) -> bool:
        """Replace a terminal job's content with ``content_free`` values; False if it is not
        terminal or was erased already. ``purged``: by retention (the result expired)."""
        changes = {**content_free, "result_path": "", "erased_at": now}
        if purged:
            changes["result_purged_at"] = now
        return self._transition_where(
            {"status__in": self.TERMINAL, "erased_at__isnull": True}, **changes
        )

    def mark_failed(self, *, code: str, message: str) -> bool:
        return self._transition(
            (self.Status.QUEUED, self.Status.PROCESSING),
            status=self.Status.FAILED,
            finished_at=timezone.now(),
            error_code=code,
            error_message=message,
        )

    def cancel_queued(self) -> bool:
        """Cancel a job no worker has taken yet."""
        return self._transition(
            (self.Status.QUEUED,), status=self.Status.CANCELLED, finished_at=timezone.now()
        )

    def mark_cancelled(self) -> bool:
        """End a processing job whose cancel was seen at a segment boundary."""
        return self._transition(
            (self.Status.PROCESSING,), status=self.Status.CANCELLED, finished_at=timezone.now()
        )

    def mark_requeued(self) -> bool:
        """Put a job whose worker died back in the queue."""
        return self._transition(
            (self.Status.PROCESSING,),
            status=self.Status.QUEUED,
            enqueued_at=timezone.now(),
            heartbeat_at=None,
            worker_pid=None,
            worker_host="",
        )

    def mark_resent(self, *, now: datetime) -> bool:
        """Take the turn to send a queued job's lost message again; False if another
        recovery took it first (the job left the queue or was sent since)."""
        return bool(
            Job.objects.filter(
                pk=self.pk, status=self.Status.QUEUED, enqueued_at=self.enqueued_at
            ).update(enqueued_at=now)
        )

    def request_cancel(self) -> bool:
        return self._transition((self.Status.PROCESSING,), cancel_requested_at=timezone.now())

    def record_progress(self, *, processed_s: float, total_s: float | None) -> None:
        changes = {"processed_s": processed_s, "heartbeat_at": timezone.now()}
        if total_s:
            changes["total_s"] = total_s
        self._transition((self.Status.PROCESSING,), **changes)

    def record_heartbeat(self) -> None:
        self._transition((self.Status.PROCESSING,), heartbeat_at=timezone.now())

    def cancel_was_requested(self) -> bool:
        return Job.objects.filter(pk=self.pk, cancel_requested_at__isnull=False).exists()


class JobEventQuerySet(models.QuerySet):
    def unhandled(self) -> JobEventQuerySet:
        return self.filter(handled_at__isnull=True)


class JobEvent(models.Model):
    """A job reached a terminal state: the record other apps react to (the outbox).

    Written in the transaction of the job's transition and holding no content, only which
    job and what happened; the reacting app (webhooks) reads the job as it is when it
    handles the event, and marks it handled (``mark_handled``) in the same transaction
    as what it does about it.
    """

    class Name(models.TextChoices):
        COMPLETED = "job.completed"
        FAILED = "job.failed"
        CANCELLED = "job.cancelled"
        # A job's notes (notes/) ended, after the job did.
        NOTES_COMPLETED = "job.notes.completed"
        NOTES_FAILED = "job.notes.failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=30, choices=Name.choices)
    created_at = models.DateTimeField(default=timezone.now)
    handled_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = JobEventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id}"

    @classmethod
    def record(cls, *, job_id: uuid.UUID, status: str) -> JobEvent:
        """Record that a job reached ``status`` (in the caller's transaction), and ask for
        the reaction once that transaction commits; ``notes.completed`` and ``notes.failed``
        for its notes."""
        event = cls.objects.create(job_id=job_id, name=cls.Name(f"job.{status}"))
        event_id = event.pk
        # robust: a broker that refuses the message fails neither the job nor the caller;
        # the minute sweep handles the event instead.
        transaction.on_commit(
            lambda: async_task(JOB_EVENT_TASK, event_id, group="job-events"), robust=True
        )
        return event

    def mark_handled(self) -> bool:
        """Take this event to handle; False if another handler took it first."""
        now = timezone.now()
        taken = JobEvent.objects.filter(pk=self.pk, handled_at__isnull=True).update(handled_at=now)
        if taken:
            self.handled_at = now
        return bool(taken)


class ServiceSettings(models.Model):
    """Operator settings edited in the admin; a single row."""

    retention_days = models.PositiveIntegerField(
        default=7, help_text="Days a terminal job's result is kept before it is deleted."
    )

    class Meta:
        verbose_name = "service settings"
        verbose_name_plural = "service settings"

    def __str__(self) -> str:
        return "Service settings"

    @classmethod
    def current(cls) -> ServiceSettings:
        row, _ = cls.objects.get_or_create(
            pk=1, defaults={"retention_days": settings.SCRIBE_RETENTION_DAYS}
        )
        return row

    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)
