"""Signed callbacks: each owner's signing secret, and every delivery with its attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.utils import timezone

from scribe.encryption import (
    SecretUndecryptable,
    secret_decrypt,
    secret_encrypt,
    secret_reencrypt,
)


class WebhookSecret(models.Model):
    """The key an owner's callbacks are signed with (HMAC-SHA256).

    Encrypted, not hashed: signing needs the secret itself. The columns hold it encrypted
    under a key from the environment (``scribe.encryption``), so a dump of the database
    alone does not sign; ``secret`` and ``previous_secret`` read and write it in the clear.
    After a rotation the previous secret signs too, beside the new one, until
    ``previous_valid_until``, so a receiver can switch without dropping a delivery.
    """

    owner = models.OneToOneField(
        "accounts.Owner", on_delete=models.CASCADE, related_name="webhook_secret"
    )
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["owner__name"]

    def __str__(self) -> str:
        return f"webhook secret of {self.owner}"

    @property
    def secret(self) -> str:
        return secret_decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = secret_encrypt(value)

    @property
    def previous_secret(self) -> str:
        return (
            secret_decrypt(self.previous_secret_encrypted) if self.previous_secret_encrypted else ""
        )

    @previous_secret.setter
    def previous_secret(self, value: str) -> None:
        self.previous_secret_encrypted = secret_encrypt(value) if value else ""

    @property
    def hint(self) -> str:
        """Enough of the secret to tell which one a receiver holds, not enough to sign."""
        try:
            return f"{self.secret[:10]}…"
        except SecretUndecryptable:
            return "(cannot be decrypted with the configured keys)"

    def signing_secrets(self, *, now: datetime) -> list[str]:
        """The secrets a delivery sent at ``now`` is signed with, newest first."""
        secrets = [self.secret]
        if (
            self.previous_secret_encrypted
            and self.previous_valid_until
            and now < self.previous_valid_until
        ):
            secrets.append(self.previous_secret)
        return secrets

    def reencrypt(self) -> None:
        """Encrypt both secrets again under the current key (after a key rotation)."""
        self.secret_encrypted = secret_reencrypt(self.secret_encrypted)
        if self.previous_secret_encrypted:
            self.previous_secret_encrypted = secret_reencrypt(self.previous_secret_encrypted)
        self.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])


class DeliveryQuerySet(models.QuerySet):
    def for_job(self, job) -> DeliveryQuerySet:
        return self.filter(job=job)

    def pending(self) -> DeliveryQuerySet:
        return self.filter(status=Delivery.Status.PENDING)

    def overdue(self, before: datetime) -> DeliveryQuerySet:
        """Pending deliveries whose next attempt was due before ``before`` and has not been
        made: its message was lost, or its worker died during the attempt."""
        return self.pending().filter(next_attempt_at__lt=before)


class Delivery(models.Model):
    """One callback of one job's terminal state, however many attempts it takes.

    States::

        pending ──> delivered   (a 2xx answer)
           │ └───> pending      (5xx, 408, 429, timeout, connection error: retried later)
           └─────> failed       (another answer, refused by the allowlist, out of attempts)

    ``next_attempt_at`` is when the next attempt is due (or, while one is in flight, when
    it should have ended); a pending delivery long past it is sent again by the minute
    schedule, so a lost broker message or a dead worker delays a callback but never
    drops it.

    Its ``id`` is the ``Scribe-Delivery`` header: the same on every attempt, so a receiver
    can drop a delivery it has already processed.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(
        "transcription.Job", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    owner = models.ForeignKey("accounts.Owner", on_delete=models.CASCADE)
    event = models.CharField(max_length=30)  # job.completed, job.failed, job.cancelled
    url = models.URLField(max_length=2000)
    body = models.TextField()  # the exact bytes sent (UTF-8 JSON), signed at each attempt
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} of job {self.job_id} ({self.status})"

    def claim_attempt(self, *, number: int, lease_until: datetime) -> bool:
        """Take attempt ``number``; False if it was taken already or the delivery ended (a
        broker may deliver the same task twice). Until ``lease_until`` the attempt is in
        flight: past it, with no answer recorded, recovery sends the delivery again."""
        claimed = Delivery.objects.filter(
            pk=self.pk, status=self.Status.PENDING, attempts=number - 1
        ).update(attempts=number, next_attempt_at=lease_until)
        if claimed:
            self.attempts, self.next_attempt_at = number, lease_until
        return bool(claimed)

    def mark_resent(self, *, now: datetime) -> bool:
        """Take the turn to send an overdue delivery again; False if another recovery did
        or an attempt was made meanwhile."""
        return bool(
            Delivery.objects.filter(
                pk=self.pk,
                status=self.Status.PENDING,
                attempts=self.attempts,
                next_attempt_at=self.next_attempt_at,
            ).update(next_attempt_at=now)
        )

    def mark_delivered(self) -> None:
        self.status, self.finished_at = self.Status.DELIVERED, timezone.now()
        self.save(update_fields=["status", "finished_at"])

    def mark_failed(self) -> None:
        self.status, self.finished_at = self.Status.FAILED, timezone.now()
        self.save(update_fields=["status", "finished_at"])

    def mark_retry(self, *, at: datetime) -> None:
        self.next_attempt_at = at
        self.save(update_fields=["next_attempt_at"])


class DeliveryAttempt(models.Model):
    """One POST of a delivery, or its refusal before any connection was made."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered"
        RETRY = "retry"  # a retry is scheduled
        FAILED = "failed"  # no retry: a final answer, or out of attempts
        REFUSED = "refused"  # not sent: the destination is not allowed

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    destination = models.CharField(max_length=2000, blank=True)  # the URL reached or refused

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="one_row_per_attempt")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.outcome}"
