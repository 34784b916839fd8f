"""Signed callbacks of a job's end: what is sent, how it is signed, when it is tried again.

A job whose options carry ``callback_url`` gets one delivery when it reaches a terminal
state: a POST of its summary (the body of ``GET /v1/jobs/{id}``; for a job of Deepgram's
``POST /v1/listen``, Deepgram's response), signed with the owner's secret. The job app
records the end as a ``JobEvent`` row in the transition's transaction and queues
``job_event_deliver`` after the commit; ``job_events_sweep`` (every minute) handles the
events whose message was lost, so no end goes uncalled back. Every connection
goes through ``scribe.egress`` with SCRIBE_WEBHOOK_ALLOWED_HOSTS, so a host off the list —
at the first hop or at any redirect — is never contacted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime, timedelta

import httpx2
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule
from rest_framework.renderers import JSONRenderer

from accounts.models import Owner
from deepgram_compat.prerecorded import callback_body as deepgram_callback_body
from scribe.egress import Egress, refusal
from scribe.encryption import SecretUndecryptable
from transcription.models import Job, JobEvent, JobEventQuerySet
from transcription.representation import job_representation
from webhooks.models import Delivery, DeliveryAttempt, WebhookSecret

logger = logging.getLogger(__name__)

SETTING = "SCRIBE_WEBHOOK_ALLOWED_HOSTS"
SECRET_PREFIX = "whsec_"
PREVIOUS_SECRET_VALID = timedelta(hours=24)  # as long as a rotated API key keeps working
SIGNATURE_HEADER = "Scribe-Signature"
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx
DELIVERY_TASK = "webhooks.tasks.delivery_attempt"
SWEEP_BATCH = 100  # events taken per transaction by the sweep


# --- secrets ---------------------------------------------------------------------------


def webhook_secret_rotate(*, owner: Owner) -> str:
    """Give ``owner`` a new signing secret and return it (shown once).

    The secret it replaces keeps signing, beside the new one, for 24 hours.
    """
    new = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        current = WebhookSecret.objects.select_for_update().filter(owner=owner).first()
        if current is None:
            current = WebhookSecret(owner=owner)
        else:
            try:
                previous = current.secret
            except SecretUndecryptable:
                previous = ""  # its key is gone: it cannot sign beside the new one
            current.previous_secret = previous
            current.previous_valid_until = now + PREVIOUS_SECRET_VALID if previous else None
        current.secret, current.rotated_at = new, now
        current.save()
    return new


def webhook_secrets_reencrypt() -> tuple[int, list[str]]:
    """Encrypt every stored secret again under the current SCRIBE_SECRETS_KEY (the last
    step of a key rotation: docs/configuration.md#secrets-at-rest). Returns how many were
    re-encrypted and the owners whose secrets no configured key opens."""
    done, undecryptable = 0, []
    for pk in WebhookSecret.objects.values_list("pk", flat=True):
        with transaction.atomic():
            row = WebhookSecret.objects.select_for_update().select_related("owner").get(pk=pk)
            try:
                row.reencrypt()
            except SecretUndecryptable:
                undecryptable.append(row.owner.name)
                continue
        done += 1
    return done, undecryptable


def signature_header(*, body: bytes, secrets_: list[str], timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex>[,v1=<hex>…]``: HMAC-SHA256 of ``"<t>." + body``, one
    ``v1`` per secret in force."""
    signed = f"{timestamp}.".encode() + body
    digests = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets_]
    return ",".join([f"t={timestamp}", *(f"v1={d}" for d in digests)])


# --- a job's end -----------------------------------------------------------------------


def job_event_deliver(*, event_id: int) -> int:
    """Handle one job event as soon as its transition commits (the prompt path)."""
    return _job_events_handle(JobEvent.objects.filter(pk=event_id))


def job_events_sweep() -> int:
    """Handle every job event not handled yet: those whose prompt message was lost (the
    process died between the commit and the send, or the broker refused it). Returns how
    many were handled."""
    handled = 0
    while count := _job_events_handle(JobEvent.objects.all(), limit=SWEEP_BATCH):
        handled += count
    return handled


def _job_events_handle(events: JobEventQuerySet, *, limit: int = 1) -> int:
    """Take up to ``limit`` unhandled events of ``events`` and create the delivery of those
    whose job has a callback_url, in one transaction, then queue their first attempts.

    Each event is taken once: the prompt task, the sweep and concurrent sweeps may race for
    it (``mark_handled`` is conditional; on PostgreSQL a sweep also skips rows another has
    locked). Returns how many were taken.
    """
    with transaction.atomic():
        pending = list(events.unhandled().select_for_update(skip_locked=True)[:limit])
        taken = [event for event in pending if event.mark_handled()]
        deliveries = [
            delivery_create(job=event.job, event=event.name)
            for event in taken
            if event.job.opts.callback_url
        ]
    # Queued after the commit: a worker must find the delivery. A message lost here is
    # sent again by deliveries_resend_lost (the delivery is due now).
    for delivery in deliveries:
        async_task(DELIVERY_TASK, str(delivery.pk), 1, group="webhooks")
    return len(taken)


def delivery_create(*, job: Job, event: str) -> Delivery:
    """Record the delivery of ``job``'s summary as it is now (its terminal state); the job
    has a ``callback_url``."""
    assert job.opts.callback_url, "a job without a callback_url has nothing to deliver"
    return Delivery.objects.create(
        job=job,
        owner=job.owner,
        event=event,
        url=job.opts.callback_url,
        body=_summary_body(job),
        next_attempt_at=timezone.now(),
    )


def _summary_body(job: Job) -> str:
    if job.opts.deepgram is not None:  # Deepgram's POST /v1/listen: its response's shape
        return deepgram_callback_body(job)
    summary = job_representation(job, base_url=settings.SCRIBE_PUBLIC_URL)
    return JSONRenderer().render(summary).decode()


def deliveries_erase(sender, *, job_id, **kwargs) -> int:
    """``job_erased``'s receiver: a delivery keeps the summary it sent, with the job's
    content; rewrite it as the job is now, content-free (a pending one is sent so).
    Returns how many deliveries were rewritten."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return 0
    return Delivery.objects.filter(job=job).update(body=_summary_body(job))


def delivery_attempt(*, delivery_id: str, number: int) -> Delivery | None:
    """Make attempt ``number`` of a pending delivery and log it; schedule the next one if
    the answer says try again. Returns the delivery, or None if the attempt was made
    already (a duplicate message) or the delivery has ended.
    """
    delivery = Delivery.objects.select_related("owner").filter(pk=delivery_id).first()
    # The longest an attempt can take (a timeout per redirect hop, a slow DNS answer).
    lease = timedelta(seconds=settings.SCRIBE_WEBHOOK_TIMEOUT_S * 3 + 60)
    if delivery is None or not delivery.claim_attempt(
        number=number, lease_until=timezone.now() + lease
    ):
        return None
    started, clock = timezone.now(), time.monotonic()
    outcome: str
    status_code: int | None = None
    egress = Egress(settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS, setting=SETTING)
    secret = WebhookSecret.objects.filter(owner=delivery.owner).first()
    if secret is None:
        outcome, error = DeliveryAttempt.Outcome.REFUSED, "the owner has no signing secret"
    else:
        outcome, status_code, error = _post(delivery, egress, secret, started)
    if outcome == DeliveryAttempt.Outcome.RETRY and (
        delivery.attempts >= settings.SCRIBE_WEBHOOK_MAX_ATTEMPTS
    ):
        outcome = DeliveryAttempt.Outcome.FAILED
        error = f"{error}; gave up after {delivery.attempts} attempts".lstrip("; ")
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=started,
        duration_ms=round((time.monotonic() - clock) * 1000),
        status_code=status_code,
        error=error[:2000],
        outcome=outcome,
        destination=egress.destination[:2000],
    )
    if outcome == DeliveryAttempt.Outcome.DELIVERED:
        delivery.mark_delivered()
    elif outcome == DeliveryAttempt.Outcome.RETRY:
        _retry_schedule(delivery)
    else:
        logger.warning("webhook %s of job %s failed: %s", delivery.pk, delivery.job_id, error)
        delivery.mark_failed()
    return delivery


def _post(
    delivery: Delivery, egress: Egress, secret: WebhookSecret, now: datetime
) -> tuple[str, int | None, str]:
    """Send one attempt; return its outcome, status code and error."""
    body = delivery.body.encode()
    try:
        signing = secret.signing_secrets(now=now)
    except SecretUndecryptable as exc:
        # A key left out of the environment: retried, so restoring it delivers.
        logger.error("webhook %s: %s", delivery.pk, exc.message)
        return DeliveryAttempt.Outcome.RETRY, None, exc.message
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "scribe-webhooks/1",
        "Scribe-Delivery": str(delivery.pk),
        "Scribe-Event": delivery.event,
        SIGNATURE_HEADER: signature_header(
            body=body, secrets_=signing, timestamp=int(now.timestamp())
        ),
    }
    try:
        # Checked here too, before the client exists: nothing is dialled for a refused host.
        egress.check(delivery.url)
        with egress.client(timeout_s=settings.SCRIBE_WEBHOOK_TIMEOUT_S) as client:
            response = client.post(delivery.url, content=body, headers=headers)
    except Exception as exc:
        refused = refusal(exc)
        if refused is not None:
            return DeliveryAttempt.Outcome.REFUSED, None, f"refused: {refused}"
        if isinstance(exc, httpx2.TimeoutException):
            error = f"timed out after {settings.SCRIBE_WEBHOOK_TIMEOUT_S} s ({type(exc).__name__})"
            return DeliveryAttempt.Outcome.RETRY, None, error
        if isinstance(exc, httpx2.TransportError):
            return DeliveryAttempt.Outcome.RETRY, None, f"{type(exc).__name__}: {exc}"
        # Logged as a failed attempt rather than raised: a claimed attempt with no row
        # would leave the delivery pending with nothing to try it again.
        logger.exception("webhook %s: unexpected error", delivery.pk)
        return DeliveryAttempt.Outcome.FAILED, None, f"unexpected {type(exc).__name__}: {exc}"
    code = response.status_code
    if 200 <= code < 300:
        return DeliveryAttempt.Outcome.DELIVERED, code, ""
    answer = f"HTTP {code}: {response.text[:200]}".rstrip(": ")
    if code >= 500 or code in RETRY_STATUSES:
        return DeliveryAttempt.Outcome.RETRY, code, answer
    return DeliveryAttempt.Outcome.FAILED, code, answer


def _retry_schedule(delivery: Delivery) -> None:
    """Queue the next attempt as a django-q2 schedule: no worker sleeps through the wait."""
    wait_s = settings.SCRIBE_WEBHOOK_RETRY_BASE_S * 2 ** (delivery.attempts - 1)
    at = timezone.now() + timedelta(seconds=wait_s)
    delivery.mark_retry(at=at)
    schedule(
        DELIVERY_TASK,
        str(delivery.pk),
        delivery.attempts + 1,
        name=f"webhook {delivery.pk} attempt {delivery.attempts + 1}",
        schedule_type=Schedule.ONCE,
        next_run=at,
    )


def deliveries_resend_lost(*, now: datetime | None = None) -> int:
    """Send again the pending deliveries whose attempt is SCRIBE_REQUEUE_AFTER_S overdue
    (the broker lost the message, or the worker died during the attempt).

    Idempotent: concurrent recoveries resend a delivery once (``mark_resent`` is
    conditional), and a message that was not lost after all makes its attempt once (an
    attempt is claimed by number). Returns the number sent again.
    """
    now = now or timezone.now()
    overdue = Delivery.objects.overdue(now - timedelta(seconds=settings.SCRIBE_REQUEUE_AFTER_S))
    resent = 0
    for delivery in overdue:
        if delivery.mark_resent(now=now):
            logger.warning(
                "webhook %s of job %s: attempt %d is overdue; sending it again",
                delivery.pk,
                delivery.job_id,
                delivery.attempts + 1,
            )
            async_task(DELIVERY_TASK, str(delivery.pk), delivery.attempts + 1, group="webhooks")
            resent += 1
    return resent
