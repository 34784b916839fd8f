"""The admin issues and rotates signing secrets (shown once) and shows the delivery log."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import Owner
from transcription.models import Job
from webhooks.models import Delivery, DeliveryAttempt, WebhookSecret
from webhooks.services import webhook_secret_rotate

pytestmark = pytest.mark.django_db

SHOWN = re.compile(r"Webhook signing secret for (\S+): (whsec_[\w-]+)")


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-tests-only"))
    return client


def shown_secrets(response) -> list[tuple[str, str]]:
    found = (SHOWN.search(str(message)) for message in response.context["messages"])
    return [(m.group(1), m.group(2)) for m in found if m]


def test_adding_a_secret_for_an_owner_shows_it_once(operator):
    owner = Owner.objects.create(name="billing")

    added = operator.post("/admin/webhooks/webhooksecret/add/", {"owner": owner.pk}, follow=True)

    [(name, secret)] = shown_secrets(added)
    assert name == "billing"
    row = WebhookSecret.objects.get(owner=owner)
    assert row.secret == secret
    page = operator.get(f"/admin/webhooks/webhooksecret/{row.pk}/change/").content.decode()
    assert secret not in page
    assert row.hint in page


def test_the_rotate_action_issues_a_new_secret_and_keeps_the_old_one_signing_for_a_day(
    operator,
):
    owner = Owner.objects.create(name="billing")
    old = webhook_secret_rotate(owner=owner)
    row = WebhookSecret.objects.get(owner=owner)

    rotated = operator.post(
        "/admin/webhooks/webhooksecret/",
        {"action": "rotate", "_selected_action": [row.pk]},
        follow=True,
    )

    [(_, new)] = shown_secrets(rotated)
    row.refresh_from_db()
    assert new != old and row.secret == new and row.previous_secret == old
    hours = (row.previous_valid_until - timezone.now()).total_seconds() / 3600
    assert hours == pytest.approx(24, abs=0.1)
    assert row.signing_secrets(now=timezone.now()) == [new, old]


def test_the_delivery_log_shows_every_attempt_and_cannot_be_edited(operator):
    owner = Owner.objects.create(name="billing")
    job = Job.objects.create(owner=owner, status=Job.Status.COMPLETED)
    delivery = Delivery.objects.create(
        job=job, owner=owner, event="job.completed", url="http://127.0.0.1:9/hook", body="{}"
    )
    for number, code, outcome, error in [
        (1, 503, "retry", "HTTP 503: busy"),
        (2, None, "retry", "timed out after 10 s (ReadTimeout)"),
        (3, 200, "delivered", ""),
    ]:
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=timezone.now(),
            duration_ms=123 * number,
            status_code=code,
            outcome=outcome,
            error=error,
        )

    page = operator.get(f"/admin/webhooks/delivery/{delivery.pk}/change/").content.decode()

    for text in ("HTTP 503: busy", "timed out after 10 s (ReadTimeout)", "369", "delivered"):
        assert text in page
    assert 'name="_save"' not in page
    assert operator.get("/admin/webhooks/delivery/add/").status_code == 403
