"""Signed callbacks of a job's end: what is sent, how it is signed, when it is tried again.

A job whose options carry ``callback_url`` gets one delivery when it reaches a terminal
state: a POST of its summary (the body of ``GET /v1/jobs/{id}``), signed with the owner's
secret. Every connection goes through ``scribe.egress`` with SCRIBE_WEBHOOK_ALLOWED_HOSTS,
so a host off the list — at the first hop or at any redirect — is never contacted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urljoin

import httpx2
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule
from rest_framework.renderers import JSONRenderer

from accounts.models import Owner
from scribe.egress import Egress, EgressRefused, refusal
from transcription.models import Job
from webhooks.models import Delivery, DeliveryAttempt, WebhookSecret

logger = logging.getLogger(__name__)

SETTING = "SCRIBE_WEBHOOK_ALLOWED_HOSTS"
SECRET_PREFIX = "whsec_"
PREVIOUS_SECRET_VALID = timedelta(hours=24)  # as long as a rotated API key keeps working
SIGNATURE_HEADER = "Scribe-Signature"
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx
DELIVERY_TASK = "webhooks.tasks.delivery_attempt"


class CallbackRefused(Exception):  # noqa: N818 - a refusal, reported as such
    """A callback_url that will not be accepted; ``str()`` says why and what to do."""


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
            WebhookSecret.objects.create(owner=owner, secret=new, rotated_at=now)
        else:
            current.previous_secret = current.secret
            current.previous_valid_until = now + PREVIOUS_SECRET_VALID
            current.secret, current.rotated_at = new, now
            current.save()
    return new


def signature_header(*, body: bytes, secrets_: list[str], timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex>[,v1=<hex>…]``: HMAC-SHA256 of ``"<t>." + body``, one
    ``v1`` per secret in force."""
    signed = f"{timestamp}.".encode() + body
    digests = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets_]
    return ",".join([f"t={timestamp}", *(f"v1={d}" for d in digests)])


# --- submission ------------------------------------------------------------------------


def callback_url_check(*, url: str, owner: Owner) -> str:
    """Return ``url`` if a job of ``owner`` may call it back; raise CallbackRefused if not.

    Checked again before every attempt: the allowlist may have changed meanwhile.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise CallbackRefused(f"Use an http or https URL, not {scheme}:.")
    try:
        Egress(settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS, setting=SETTING).check(url)
    except EgressRefused as exc:
        raise CallbackRefused(
            f"Refused: {exc}. Ask the operator to add the host to {SETTING}, or leave "
            "callback_url out and poll /v1/jobs/{id}."
        ) from None
    if not WebhookSecret.objects.filter(owner=owner).exists():
        raise CallbackRefused(
            "Callbacks are signed, and your owner has no signing secret yet: ask the operator "
            "to create one in the admin (Webhooks → Webhook secrets → Add), then submit again."
        )
    return url


# --- a job's end -----------------------------------------------------------------------


def webhook_job_ended(*, job: Job) -> None:
    """Schedule the callback of a job that just reached a terminal state, if it has one.

    Called by the job's transition: the delivery is created and queued only after the
    transition's transaction commits, and nothing it does can fail the job.
    """
    if not (job.options or {}).get("callback_url"):
        return
    job_id = job.pk
    transaction.on_commit(lambda: _delivery_start(job_id=job_id), robust=True)


def _delivery_start(*, job_id: uuid.UUID) -> None:
    job = Job.objects.select_related("owner").get(pk=job_id)
    delivery = delivery_create(job=job)
    async_task(DELIVERY_TASK, str(delivery.pk), 1, group="webhooks")


class _PublicSite:
    """Stands in for the request job_representation builds links with: a worker has none."""

    def build_absolute_uri(self, location: str) -> str:
        return urljoin(settings.SCRIBE_PUBLIC_URL, location)


def delivery_create(*, job: Job) -> Delivery:
    """Record the delivery of ``job``'s summary as it is now (its terminal state)."""
    from transcription.serializers import job_representation  # serializers import services

    summary = job_representation(job, _PublicSite())
    body = JSONRenderer().render(summary).decode()
    return Delivery.objects.create(
        job=job,
        owner=job.owner,
        event=f"job.{job.status}",
        url=job.options["callback_url"],
        body=body,
        next_attempt_at=timezone.now(),
    )


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
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "scribe-webhooks/1",
        "Scribe-Delivery": str(delivery.pk),
        "Scribe-Event": delivery.event,
        SIGNATURE_HEADER: signature_header(
            body=body, secrets_=secret.signing_secrets(now=now), timestamp=int(now.timestamp())
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
