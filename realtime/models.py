"""A job's segments as they are produced: the finals of live sessions, written as they
are committed (the channel layer is at-most-once, so the database, not the layer, is where
a final is kept), and the partial segments of a running file job, written with its progress
(deleted when it ends; its result has them). And each realtime worker's setup."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class StreamSegment(models.Model):
    job = models.ForeignKey(
        "transcription.Job", on_delete=models.CASCADE, related_name="stream_segments"
    )
    index = models.PositiveIntegerField()
    start = models.FloatField()
    end = models.FloatField()
    text = models.TextField()  # as sent: corrected by the session's glossary and rules
    raw_text = models.TextField(default="")  # as decoded
    words = models.JSONField(default=list)
    confidence = models.FloatField()
    avg_logprob = models.FloatField(default=0.0)
    compression_ratio = models.FloatField(default=0.0)
    flags = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_final_per_index")]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.index}"


class RealtimeWorker(models.Model):
    """A running realtime worker's setup, as it measured it when it started: written by
    the worker (``realtime.status``), kept fresh while it lives, read by ``/v1/system``.
    A row whose worker stopped refreshing it is dropped when read."""

    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    model = models.CharField(max_length=500)
    device = models.CharField(max_length=20)  # "cpu" or "cuda:N"
    compute_type = models.CharField(max_length=30)
    measured_sessions = models.PositiveIntegerField()  # what its start-up measurement allows
    session_cap = models.PositiveIntegerField()  # what it admits
    batch_size = models.PositiveIntegerField()  # sessions it decodes together at most
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host", "pid"]
        constraints = [
            models.UniqueConstraint(fields=["host", "pid"], name="one_row_per_realtime_worker")
        ]

    def __str__(self) -> str:
        return f"realtime worker {self.host}/{self.pid}"
