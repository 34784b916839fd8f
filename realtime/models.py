"""A job's segments as they are produced: the finals of live sessions, written as they
are committed (the channel layer is at-most-once, so the database, not the layer, is where
a final is kept), and the partial segments of a running file job, written with its progress
(deleted when it ends; its result has them)."""

from __future__ import annotations

from django.db import models


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
