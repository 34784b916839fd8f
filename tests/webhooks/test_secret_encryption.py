"""Webhook signing secrets are encrypted at rest under a key from the environment: the
database (a dump of it) holds no secret, deliveries still verify with the real one, keys
rotate with SCRIBE_SECRETS_KEY_PREVIOUS and `manage.py reencrypt_secrets`, and a data
migration encrypts the secrets stored in plain text before."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import Owner
from scribe.encryption import SecretUndecryptable, secret_decrypt
from tests.conftest import REPO_ROOT
from tests.webhooks import test_deliveries as deliveries
from webhooks.models import DeliveryAttempt, WebhookSecret
from webhooks.services import webhook_secret_rotate

pytestmark = pytest.mark.django_db(transaction=True)

# The delivery tests' real loopback receiver, the documented verifier and their fixtures.
Receiver, verify = deliveries.Receiver, deliveries.verify
complete, processing_job = deliveries.complete, deliveries.processing_job
hooks, owner = deliveries.hooks, deliveries.owner

KEY_A = "a" * 16 + "-first-key-of-at-least-32-chars"
KEY_B = "b" * 16 + "-second-key-of-at-least-32-chars"


def stored_values() -> str:
    """Every column of every row of the table, as a database dump would show them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM webhooks_webhooksecret")
        return repr(cursor.fetchall())


def test_the_database_holds_no_secret_and_deliveries_verify_with_the_real_one(
    owner, hooks, settings
):
    settings.SCRIBE_SECRETS_KEY = KEY_A
    old = webhook_secret_rotate(owner=owner)
    new = webhook_secret_rotate(owner=owner)  # the old one kept beside it, encrypted too
    dump = io.StringIO()
    call_command("dumpdata", "webhooks.webhooksecret", stdout=dump)

    with Receiver() as receiver:
        complete(processing_job(owner, receiver.url))

    for exposed in (stored_values(), dump.getvalue()):
        assert new not in exposed and old not in exposed
        assert new[len("whsec_") :][:12] not in exposed
    [request] = receiver.requests
    signed = (request["body"], request["headers"]["Scribe-Signature"])
    assert verify(new, *signed) and verify(old, *signed)


def test_a_database_read_under_another_key_cannot_sign_and_says_which_key_to_add(
    owner, hooks, settings
):
    settings.SCRIBE_SECRETS_KEY = KEY_A
    secret = webhook_secret_rotate(owner=owner)
    settings.SCRIBE_SECRETS_KEY = KEY_B  # a server holding the dump, not the key

    with pytest.raises(SecretUndecryptable) as refused:
        WebhookSecret.objects.get(owner=owner).signing_secrets(now=timezone.now())
    with Receiver() as receiver:
        complete(processing_job(owner, receiver.url))

    assert "SCRIBE_SECRETS_KEY_PREVIOUS" in refused.value.message
    assert "cannot be decrypted" in WebhookSecret.objects.get(owner=owner).hint
    assert receiver.requests == []  # nothing was signed, nothing was sent
    attempt = DeliveryAttempt.objects.get()
    assert attempt.outcome == DeliveryAttempt.Outcome.RETRY  # restoring the key delivers
    assert "cannot be decrypted" in attempt.error
    settings.SCRIBE_SECRETS_KEY_PREVIOUS = [KEY_A]
    assert WebhookSecret.objects.get(owner=owner).secret == secret


def test_an_owner_whose_secret_no_key_opens_can_be_issued_a_new_one(owner, settings):
    settings.SCRIBE_SECRETS_KEY = KEY_A
    webhook_secret_rotate(owner=owner)
    settings.SCRIBE_SECRETS_KEY = KEY_B

    new = webhook_secret_rotate(owner=owner)

    assert WebhookSecret.objects.get(owner=owner).signing_secrets(now=timezone.now()) == [new]


def test_a_key_rotation_reencrypts_every_secret_under_the_new_key(owner, settings):
    settings.SCRIBE_SECRETS_KEY = KEY_A
    old = webhook_secret_rotate(owner=owner)
    secret = webhook_secret_rotate(owner=owner)
    before = WebhookSecret.objects.get(owner=owner).secret_encrypted
    settings.SCRIBE_SECRETS_KEY, settings.SCRIBE_SECRETS_KEY_PREVIOUS = KEY_B, [KEY_A]
    out = io.StringIO()

    call_command("reencrypt_secrets", stdout=out)

    settings.SCRIBE_SECRETS_KEY_PREVIOUS = []  # the old key is gone from the environment
    row = WebhookSecret.objects.get(owner=owner)
    assert "Re-encrypted 1 webhook secret(s)" in out.getvalue()
    assert row.secret_encrypted != before
    assert (row.secret, row.previous_secret) == (secret, old)


def test_reencrypting_names_the_owners_whose_secret_no_configured_key_opens(owner, settings):
    settings.SCRIBE_SECRETS_KEY = KEY_A
    webhook_secret_rotate(owner=owner)
    settings.SCRIBE_SECRETS_KEY = KEY_B

    with pytest.raises(CommandError) as failed:
        call_command("reencrypt_secrets", stdout=io.StringIO())

    assert owner.name in str(failed.value)
    assert "SCRIBE_SECRETS_KEY_PREVIOUS" in str(failed.value)


def test_without_a_key_of_its_own_the_key_is_derived_from_secret_key(owner, settings):
    settings.SCRIBE_SECRETS_KEY, settings.SECRET_KEY = "", "s" * 50
    secret = webhook_secret_rotate(owner=owner)
    stored = WebhookSecret.objects.get(owner=owner).secret_encrypted

    settings.SECRET_KEY = "t" * 50
    with pytest.raises(SecretUndecryptable):
        secret_decrypt(stored)
    settings.SCRIBE_SECRETS_KEY_PREVIOUS = ["s" * 50]  # the SECRET_KEY it was made under

    assert secret_decrypt(stored) == secret
    assert secret not in stored_values()


def test_the_migration_encrypts_the_secrets_stored_in_plain_text(settings):
    settings.SCRIBE_SECRETS_KEY = KEY_A
    plain, before = ("whsec_plain-current-0123456789", "whsec_plain-previous-0123456789")
    executor = MigrationExecutor(connection)
    executor.migrate([("webhooks", "0001_initial")])
    old_apps = executor.loader.project_state([("webhooks", "0001_initial")]).apps
    migrated = old_apps.get_model("accounts", "Owner").objects.create(name="migrated")
    old_apps.get_model("webhooks", "WebhookSecret").objects.create(
        owner=migrated, secret=plain, previous_secret=before, rotated_at=timezone.now()
    )

    executor = MigrationExecutor(connection)
    executor.migrate([("webhooks", "0002_webhooksecret_encrypted")])

    row = WebhookSecret.objects.get(owner=Owner.objects.get(name="migrated"))
    assert (row.secret, row.previous_secret) == (plain, before)
    assert plain not in stored_values() and before not in stored_values()
    # And back: the plain columns are restored, then forwards again to the latest state.
    executor = MigrationExecutor(connection)
    executor.migrate([("webhooks", "0001_initial")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, previous_secret FROM webhooks_webhooksecret")
        assert cursor.fetchall() == [(plain, before)]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_short_secrets_key_is_refused_at_start_up():
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={**environ, "SCRIBE_SECRETS_KEY": "too-short"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "SCRIBE_SECRETS_KEY is 9 characters: use at least 32" in result.stderr
