"""GET /v1/keys/me: a key learns its own scopes (the caption page hides what it lacks)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


def get_me(secret: str | None):
    client = APIClient()
    if secret is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/v1/keys/me")


def test_a_key_of_any_scope_learns_its_owner_and_scopes_but_never_its_secret():
    key, secret = api_key_create(owner_name="captions", scopes=["stream", "glossary"])

    response = get_me(secret)

    assert response.status_code == 200
    body = response.json()
    assert body["owner"] == "captions"
    assert body["scopes"] == ["glossary", "stream"]
    assert body["prefix"] == key.prefix
    assert secret not in response.content.decode()
    assert secret.partition(".")[2] not in response.content.decode()


@pytest.mark.parametrize("secret", [None, "nope.not-a-key"])
def test_without_a_valid_key_it_answers_401_in_the_error_envelope(secret):
    response = get_me(secret)

    assert response.status_code == 401
    assert response.json()["error"]["message"]


def test_a_revoked_key_is_told_so():
    key, secret = api_key_create(owner_name="captions", scopes=["stream"])
    api_key_revoke(key=key)

    response = get_me(secret)

    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_the_schema_documents_it():
    schema = APIClient().get("/v1/schema", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/v1/keys/me"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "scopes" in schema["components"]["schemas"][ok.rsplit("/", 1)[1]]["properties"]
