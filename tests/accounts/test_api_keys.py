"""API keys on every endpoint, with the owner / teammate / outsider personas."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import APIKey, KeyAuditEvent
from accounts.services import api_key_create, api_key_revoke, api_key_rotate
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(secret: str | None, *, header: str = "bearer") -> APIClient:
    client = APIClient()
    if secret is not None and header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    elif secret is not None:
        client.credentials(HTTP_X_API_KEY=secret)
    return client


@pytest.fixture
def personas(job_settings):
    owner, owner_secret = api_key_create(owner_name="billing", scopes=["transcribe"])
    teammate, teammate_secret = api_key_create(owner_name="billing", scopes=["transcribe"])
    _, outsider_secret = api_key_create(owner_name="search", scopes=["transcribe"])
    _, streamer_secret = api_key_create(owner_name="billing", scopes=["stream"])
    _, admin_secret = api_key_create(owner_name="platform", scopes=["admin"])
    return {
        "owner": (owner, owner_secret),
        "teammate": (teammate, teammate_secret),
        "outsider": outsider_secret,
        "wrong_scope": streamer_secret,
        "admin": admin_secret,
    }


@pytest.fixture
def job_id(personas, tone_wav) -> str:
    with tone_wav.open("rb") as handle:
        response = client_for(personas["owner"][1]).post(
            "/v1/jobs", {"file": handle, "options": "{}"}, format="multipart"
        )
    assert response.status_code == 202
    return response.json()["job_id"]


def endpoints(job_id: str, tone_wav) -> list[tuple[str, str, dict]]:
    return [
        ("get", "/v1/jobs", {}),
        ("post", "/v1/jobs", {"data": {"file": tone_wav.open("rb")}, "format": "multipart"}),
        ("get", f"/v1/jobs/{job_id}", {}),
        ("get", f"/v1/jobs/{job_id}/result", {}),
        ("delete", f"/v1/jobs/{job_id}", {}),
    ]


def call(client, method, path, kwargs):
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize("index", range(5), ids=["list", "create", "get", "result", "cancel"])
def test_every_jobs_endpoint_needs_a_key(index, job_id, tone_wav):
    method, path, kwargs = endpoints(job_id, tone_wav)[index]

    response = call(client_for(None), method, path, kwargs)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["error"]["message"]


@pytest.mark.parametrize("index", range(5), ids=["list", "create", "get", "result", "cancel"])
def test_every_jobs_endpoint_refuses_a_key_without_the_transcribe_scope(
    index, job_id, personas, tone_wav
):
    method, path, kwargs = endpoints(job_id, tone_wav)[index]

    response = call(client_for(personas["wrong_scope"]), method, path, kwargs)

    assert response.status_code == 403
    assert "lacks the 'transcribe' scope" in response.json()["error"]["message"]


@pytest.mark.parametrize("index", [2, 3, 4], ids=["get", "result", "cancel"])
def test_another_owners_job_is_not_found(index, job_id, personas, tone_wav):
    method, path, kwargs = endpoints(job_id, tone_wav)[index]

    response = call(client_for(personas["outsider"]), method, path, kwargs)

    assert response.status_code == 404
    assert Job.objects.get(pk=job_id).status == "queued"


def test_a_teammate_sees_and_manages_the_owners_jobs(job_id, personas):
    teammate = client_for(personas["teammate"][1], header="x-api-key")

    assert teammate.get(f"/v1/jobs/{job_id}").status_code == 200
    assert [j["job_id"] for j in teammate.get("/v1/jobs").json()["results"]] == [job_id]
    assert teammate.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert client_for(personas["outsider"]).get("/v1/jobs").json()["results"] == []


@pytest.mark.parametrize("index", range(5), ids=["list", "create", "get", "result", "cancel"])
def test_expired_and_revoked_keys_are_refused_everywhere(index, job_id, personas, tone_wav):
    key, secret = personas["owner"]
    method, path, kwargs = endpoints(job_id, tone_wav)[index]
    APIKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))

    expired = call(client_for(secret), method, path, kwargs)
    APIKey.objects.filter(pk=key.pk).update(expiry_date=None)
    api_key_revoke(key=key)
    revoked = call(client_for(secret), method, path, endpoints(job_id, tone_wav)[index][2])

    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_a_wrong_key_is_refused(job_id):
    response = client_for("AbCd1234.notthesecret").get("/v1/jobs")

    assert response.status_code == 401
    assert "not valid" in response.json()["error"]["message"]


def test_the_system_endpoint_needs_the_admin_scope(job_id, personas):
    assert client_for(personas["owner"][1]).get("/v1/system/queue").status_code == 403

    body = client_for(personas["admin"]).get("/v1/system/queue").json()

    assert body["queued"] == 1 and body["processing"] == 0
    assert body["oldest_queued_age_sec"] >= 0


def test_no_plaintext_key_is_stored_anywhere(personas, job_id):
    secrets = [
        personas["owner"][1],
        personas["teammate"][1],
        personas["outsider"],
        personas["wrong_scope"],
        personas["admin"],
    ]
    client_for(secrets[0]).get("/v1/jobs")  # last_used_at is written
    client_for(secrets[0] + "x").get("/v1/jobs")  # and a denial is audited

    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dump += [str(value) for row in cursor.fetchall() for value in row]
    text = "\n".join(dump)

    for secret in secrets:
        assert secret not in text
        assert secret.partition(".")[2] not in text  # nor its secret half alone
    assert personas["owner"][0].prefix in text  # the visible prefix is stored


def test_a_rotated_key_works_during_the_grace_period_and_not_after(personas, job_id):
    old, old_secret = personas["owner"]

    new, new_secret = api_key_rotate(key=old)

    assert (new.owner, new.scopes, new.rotated_from) == (old.owner, old.scopes, old)
    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        assert client_for(old_secret).get("/v1/jobs").status_code == 200
        assert client_for(new_secret).get(f"/v1/jobs/{job_id}").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        late = client_for(old_secret).get("/v1/jobs")
        assert late.status_code == 401 and "expired" in late.json()["error"]["message"]
        assert client_for(new_secret).get("/v1/jobs").status_code == 200


def test_rate_limits_are_per_key_with_retry_after(personas, settings):
    settings.SCRIBE_RATE_LIMIT = "3/minute"
    from django.core.cache import cache

    cache.clear()
    owner = client_for(personas["owner"][1])

    statuses = [owner.get("/v1/jobs").status_code for _ in range(4)]
    limited = owner.get("/v1/jobs")

    assert statuses == [200, 200, 200, 429]
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["error"]["code"] == "throttled"
    assert client_for(personas["teammate"][1]).get("/v1/jobs").status_code == 200


def test_a_flood_of_throttled_requests_writes_one_audit_row_and_denials_are_still_audited(
    personas, settings
):
    settings.SCRIBE_RATE_LIMIT = "3/minute"
    from django.core.cache import cache

    cache.clear()
    key, secret = personas["owner"]
    owner = client_for(secret)
    for _ in range(3):
        owner.get("/v1/jobs")

    flood = [owner.get("/v1/jobs").status_code for _ in range(20)]
    client_for(f"{key.prefix}.not-the-secret").get("/v1/jobs")

    assert flood == [429] * 20
    denied = KeyAuditEvent.objects.filter(action="denied")
    assert denied.filter(reason__startswith="Throttled").count() == 1
    assert denied.exclude(reason__startswith="Throttled").count() == 1


def test_key_events_and_denied_requests_are_audited(personas, job_id):
    key, secret = personas["owner"]
    client_for(personas["wrong_scope"]).get(f"/v1/jobs/{job_id}")
    client_for(None).get("/v1/jobs")
    api_key_rotate(key=key)
    api_key_revoke(key=key)
    client_for(secret).get("/v1/jobs")

    events = list(
        KeyAuditEvent.objects.order_by("created_at").values_list(
            "action", "key_prefix", "route", "reason"
        )
    )
    actions = [e[0] for e in events]
    assert actions.count("created") == 6  # five personas and the rotated key
    denied = [e for e in events if e[0] == "denied"]
    assert [(e[1], e[2]) for e in denied] == [
        (personas["wrong_scope"].partition(".")[0], f"GET /v1/jobs/{job_id}"),
        ("", "GET /v1/jobs"),
        (key.prefix, "GET /v1/jobs"),
    ]
    assert "PermissionDenied" in denied[0][3] and "revoked" in denied[2][3]
    assert ("rotated", key.prefix) in [(e[0], e[1]) for e in events]
    assert ("revoked", key.prefix) in [(e[0], e[1]) for e in events]


def test_last_use_is_recorded(personas):
    key, secret = personas["owner"]

    client_for(secret).get("/v1/jobs")

    key.refresh_from_db()
    assert key.last_used_at is not None
    assert timezone.now() - key.last_used_at < timedelta(seconds=30)


def test_create_api_key_prints_a_working_key_once(db, job_settings):
    out, err = StringIO(), StringIO()

    call_command(
        "create_api_key",
        "--owner",
        "reports",
        "--scopes",
        "transcribe",
        "stream",
        stdout=out,
        stderr=err,
    )

    secret = out.getvalue().strip()
    assert len(secret.splitlines()) == 1
    assert client_for(secret).get("/v1/jobs").status_code == 200
    key = APIKey.objects.get(prefix=secret.partition(".")[0])
    assert key.owner.name == "reports" and key.scopes == ["stream", "transcribe"]
    assert secret not in err.getvalue()


def test_the_admin_rotates_and_revokes_keys(client, personas):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-tests-only"))
    key, secret = personas["owner"]

    rotated = client.post(
        "/admin/accounts/apikey/", {"action": "rotate", "_selected_action": [key.pk]}, follow=True
    )
    shown = [str(m) for m in rotated.context["messages"]]
    new_secret = shown[0].split(": ")[1].split(" ")[0]
    assert client_for(new_secret).get("/v1/jobs").status_code == 200
    assert APIKey.objects.get(pk=key.pk).expiry_date is not None

    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert client_for(secret).get("/v1/jobs").status_code == 401
    audit = client.get("/admin/accounts/keyauditevent/?action__exact=revoked")
    assert key.prefix in audit.content.decode()
