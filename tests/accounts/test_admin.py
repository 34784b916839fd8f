"""The API-key admin guards itself: known scopes only, service-written fields, audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import APIKey, KeyAuditEvent, Owner
from accounts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-tests-only"))
    return client


def key_form(owner: Owner, scopes: list[str]) -> dict:
    return {"name": "reports key", "owner": owner.pk, "scopes": scopes}


def test_the_key_form_offers_the_known_scopes_as_checkboxes(operator):
    page = operator.get("/admin/accounts/apikey/add/").content.decode()

    for scope in ("transcribe", "stream", "glossary", "admin"):
        assert f'type="checkbox" name="scopes" value="{scope}"' in page


def test_the_admin_refuses_an_unknown_scope(operator):
    owner = Owner.objects.create(name="reports")

    response = operator.post("/admin/accounts/apikey/add/", key_form(owner, ["bogus"]))

    assert response.status_code == 200
    assert "Select a valid choice. bogus is not one of the available choices." in (
        response.content.decode()
    )
    assert not APIKey.objects.exists()


def test_the_admin_stores_the_ticked_scopes_as_a_list(operator):
    owner = Owner.objects.create(name="reports")

    response = operator.post(
        "/admin/accounts/apikey/add/", key_form(owner, ["transcribe", "stream"])
    )

    assert response.status_code == 302
    assert APIKey.objects.get().scopes == ["stream", "transcribe"]


def test_last_use_and_rotation_origin_are_read_only_in_the_admin(operator):
    key, _ = api_key_create(owner_name="reports", scopes=["transcribe"])
    other, _ = api_key_create(owner_name="reports", scopes=["transcribe"])

    page = operator.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    operator.post(
        f"/admin/accounts/apikey/{key.pk}/change/",
        {
            **key_form(key.owner, ["transcribe"]),
            "last_used_at_0": "2020-01-01",
            "last_used_at_1": "00:00:00",
            "rotated_from": other.pk,
        },
    )

    assert 'name="last_used_at' not in page and 'name="rotated_from"' not in page
    key.refresh_from_db()
    assert (key.last_used_at, key.rotated_from) == (None, None)


def test_the_key_audit_log_cannot_be_deleted_in_the_admin(operator):
    key, _ = api_key_create(owner_name="reports", scopes=["transcribe"])
    event = KeyAuditEvent.objects.get(key_prefix=key.prefix)

    bulk = operator.post(
        "/admin/accounts/keyauditevent/",
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    single = operator.post(f"/admin/accounts/keyauditevent/{event.pk}/delete/", {"post": "yes"})

    assert single.status_code == 403
    assert bulk.status_code == 200  # the action is not offered: "No action selected."
    assert KeyAuditEvent.objects.filter(pk=event.pk).exists()


def test_the_key_list_shows_revoked_and_expired_keys_as_not_usable(operator):
    live, _ = api_key_create(owner_name="reports", scopes=["transcribe"])
    revoked, _ = api_key_create(owner_name="reports", scopes=["transcribe"])
    api_key_revoke(key=revoked)
    expired, _ = api_key_create(owner_name="reports", scopes=["transcribe"])
    expired.expiry_date = timezone.now() - timedelta(hours=1)
    expired.save(update_fields=["expiry_date"])

    page = operator.get("/admin/accounts/apikey/").content.decode()

    rows = {
        key.prefix: row
        for key in (live, revoked, expired)
        for row in page.split("<tr")
        if key.prefix in row
    }
    assert "usable" in page
    assert 'alt="True"' in rows[live.prefix]
    for key in (revoked, expired):
        assert 'alt="True"' not in rows[key.prefix] and 'alt="False"' in rows[key.prefix]


def test_the_admin_index_lists_api_keys_once(operator):
    page = operator.get("/admin/").content.decode()

    assert page.count(">API keys<") == 1
    assert "/admin/rest_framework_api_key/" not in page


def test_keys_made_outside_the_admin_follow_the_same_scope_rule(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Unknown scope\\(s\\): bogus"):
        api_key_create(owner_name="reports", scopes=["transcribe", "bogus"])
    with pytest.raises(ValidationError, match="at least one scope"):
        api_key_create(owner_name="reports", scopes=[])
    assert not APIKey.objects.exists()
    key, _ = api_key_create(owner_name="reports", scopes=["stream", "transcribe", "stream"])
    assert key.scopes == ["stream", "transcribe"]
