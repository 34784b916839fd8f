"""Refused requests are counted, not logged one by one: a flood of made-up keys adds a
bounded number of audit rows that still say who knocked, is throttled per address, and
never locks out a valid key from the same address."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.audit import (
    DENIED_ADDRESSES,
    DENIED_ROWS_PER_ADDRESS,
    MORE,
    request_denied_record,
)
from accounts.models import KeyAuditEvent
from accounts.services import api_key_create
from accounts.websocket import authenticate_key
from transcription import erasure

pytestmark = pytest.mark.django_db(transaction=True)

# Mid-minute, so that the flood below, with time standing still, falls in one minute.
MINUTE = datetime(2026, 3, 2, 9, 41, 20, tzinfo=UTC)
FLOOD = 2000


def bearer(raw: str | None) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else {}


def denied():
    return KeyAuditEvent.objects.filter(action=KeyAuditEvent.Action.DENIED)


def counted() -> int:
    return denied().aggregate(total=Sum("count"))["total"] or 0


def test_2000_made_up_keys_from_one_address_add_at_most_11_rows_and_a_valid_key_keeps_working(
    owner_key,
):
    _, secret = owner_key
    knocker, valid = APIClient(), APIClient()
    statuses: Counter[int] = Counter()
    valid_statuses: Counter[int] = Counter()

    with time_machine.travel(MINUTE, tick=False):
        for i in range(FLOOD):
            # Every request a new made-up prefix (the worst case), every fifth no key at all.
            raw = None if i % 5 == 0 else f"mk{i:06d}.not-anyones-secret"
            statuses[knocker.get("/v1/jobs", **bearer(raw)).status_code] += 1
            if i % 10 == 0:
                valid_statuses[valid.get("/v1/jobs", **bearer(secret)).status_code] += 1

    assert valid_statuses == {200: FLOOD // 10}
    assert DENIED_ROWS_PER_ADDRESS + 1 == 11
    assert denied().count() <= 11
    assert counted() == FLOOD
    assert statuses == {401: 60, 429: FLOOD - 60}  # SCRIBE_AUTH_FAILURE_RATE_LIMIT 60/minute
    assert set(denied().values_list("remote_addr", flat=True)) == {"127.0.0.1"}
    assert not KeyAuditEvent.objects.filter(key_prefix=owner_key[0].prefix, action="denied")


def test_the_rows_name_the_prefixes_and_fold_the_rest_into_one(owner_key):
    knocker = APIClient()

    with time_machine.travel(MINUTE, tick=False):
        for _ in range(3):
            knocker.get("/v1/jobs", **bearer("Guess001.wrong"))
        for i in range(30):
            knocker.get("/v1/jobs", **bearer(f"Spread{i:02d}.wrong"))

    rows = {row.key_prefix: row for row in denied()}
    assert rows["Guess001"].count == 3
    assert rows["Guess001"].reason.startswith("AuthenticationFailed: The API key is not valid")
    own = [p for p in rows if p.startswith("Spread")]
    assert own == [f"Spread{i:02d}" for i in range(DENIED_ROWS_PER_ADDRESS - 1)]
    assert rows[MORE].count == 30 - len(own)
    assert "over 10 distinct key prefixes" in rows[MORE].reason
    assert sum(row.count for row in rows.values()) == 33


def test_a_new_minute_starts_new_rows_and_a_new_throttle_window(owner_key, settings):
    settings.SCRIBE_AUTH_FAILURE_RATE_LIMIT = "3/minute"
    knocker = APIClient()

    with time_machine.travel(MINUTE, tick=False):
        first = [knocker.get("/v1/jobs", **bearer("Guess001.x")).status_code for _ in range(5)]
    with time_machine.travel(MINUTE + timedelta(minutes=1), tick=False):
        second = knocker.get("/v1/jobs", **bearer("Guess001.x")).status_code

    assert first == [401, 401, 401, 429, 429] and second == 401
    rows = denied().values_list("reason", "count")
    assert sorted((reason.partition(":")[0], count) for reason, count in rows) == [
        ("AuthenticationFailed", 1),  # the next minute's
        ("AuthenticationFailed", 3),
        ("Throttled", 2),
    ]


def test_over_the_limit_a_client_without_a_valid_key_gets_429_in_the_envelope(owner_key, settings):
    settings.SCRIBE_AUTH_FAILURE_RATE_LIMIT = "4/minute"
    knocker, valid = APIClient(), APIClient()

    with time_machine.travel(MINUTE, tick=False):
        refused = [knocker.get("/v1/jobs").status_code for _ in range(2)]
        refused += [knocker.get("/v1/jobs", **bearer("x.y")).status_code for _ in range(2)]
        limited = knocker.get("/v1/jobs", **bearer("x.y"))
        elsewhere = knocker.get("/v1/jobs", REMOTE_ADDR="192.0.2.9")
        still_valid = valid.get("/v1/jobs", **bearer(owner_key[1]))

    assert refused == [401] * 4
    assert limited.status_code == 429
    assert limited["Retry-After"] == "40"  # the window ends at the minute: 09:42:00
    error = limited.json()["error"]
    assert error["code"] == "throttled"
    assert "without a valid API key from this address" in error["message"]
    assert elsewhere.status_code == 401  # counted per address
    assert still_valid.status_code == 200


def test_an_empty_failed_auth_limit_turns_the_throttle_off(db, settings):
    settings.SCRIBE_AUTH_FAILURE_RATE_LIMIT = None  # what env_rate makes of ""
    knocker = APIClient()

    statuses = {knocker.get("/v1/jobs", **bearer("x.y")).status_code for _ in range(70)}

    assert statuses == {401}


def test_a_spread_of_addresses_is_bounded_too(db):
    knocker = APIClient()
    addresses = [f"10.0.{i // 200}.{i % 200}" for i in range(DENIED_ADDRESSES + 50)]

    with time_machine.travel(MINUTE, tick=False):
        for address in addresses:
            knocker.get("/v1/jobs", REMOTE_ADDR=address, **bearer("Same0001.x"))

    kept = set(denied().exclude(remote_addr=None).values_list("remote_addr", flat=True))
    assert kept == set(addresses[:DENIED_ADDRESSES])
    unnamed = denied().get(remote_addr=None)
    assert unnamed.count == 50 and "address not kept: over 100" in unnamed.reason
    assert counted() == len(addresses)


def test_a_refused_key_of_someones_always_has_its_own_row(owner_key):
    _, stream_secret = api_key_create(owner_name="meetings", scopes=["stream"])
    stream_prefix = stream_secret.partition(".")[0]
    knocker = APIClient()

    with time_machine.travel(MINUTE, tick=False):
        for i in range(20):  # fills this address's rows for keys of no one
            knocker.get("/v1/jobs", **bearer(f"Spread{i:02d}.wrong"))
        for _ in range(3):
            knocker.get("/v1/jobs", **bearer(stream_secret))  # 403: no transcribe scope

    row = denied().get(key_prefix=stream_prefix)
    assert (row.count, row.owner.name, row.remote_addr) == (3, "meetings", "127.0.0.1")
    assert row.reason.startswith("PermissionDenied")


def test_an_operator_sees_prefix_address_and_count_in_the_admin(client, owner_key):
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-tests-only"))
    with time_machine.travel(MINUTE, tick=False):
        for _ in range(37):
            APIClient().get("/v1/jobs", REMOTE_ADDR="203.0.113.5", **bearer("Knock123.guess"))

    page = client.get("/admin/accounts/keyauditevent/?action__exact=denied").content.decode()

    row = next(line for line in page.split("<tr") if "Knock123" in line)
    assert "203.0.113.5" in row
    assert '<td class="field-count">37</td>' in row
    assert "AuthenticationFailed" in row


def test_websocket_handshakes_are_counted_under_the_same_bound(db):
    _, stream_secret = api_key_create(owner_name="meetings", scopes=["stream"])
    route, address = "WS /v1/stream", "198.51.100.7"

    with time_machine.travel(MINUTE, tick=False):
        for i in range(500):
            raw = None if i % 5 == 0 else f"ws{i:06d}.made-up"
            assert authenticate_key(raw, route=route, remote_addr=address) is None
            if i % 50 == 0:
                assert authenticate_key(stream_secret, route=route, remote_addr=address)

    assert denied().count() <= DENIED_ROWS_PER_ADDRESS + 1
    assert counted() == 500
    assert set(denied().values_list("remote_addr", "route")) == {(address, route)}


def test_key_events_are_still_one_row_each(owner_key):
    key, _ = owner_key

    created = KeyAuditEvent.objects.get(key_prefix=key.prefix, action="created")

    assert (created.count, created.bucket) == (1, None)
    assert abs(created.last_seen_at - created.created_at) < timedelta(seconds=1)


def test_concurrent_refusals_of_one_kind_count_into_one_row(db):
    def knock() -> None:
        try:
            for _ in range(25):
                request_denied_record(
                    raw_key="Race0001.x",
                    route="GET /v1/jobs",
                    reason="AuthenticationFailed: not valid",
                    remote_addr="192.0.2.1",
                )
        finally:
            connection.close()

    threads = [threading.Thread(target=knock) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert list(denied().values_list("key_prefix", "count")) == [("Race0001", 100)]


def test_with_the_cache_unreachable_refusals_fold_into_one_row_and_valid_keys_work(
    owner_key, settings
):
    # A closed loopback port: what a Redis restart looks like to the cache.
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1",
        },
    }
    knocker = APIClient()

    refused = {knocker.get("/v1/jobs", **bearer(f"Down{i:04d}.x")).status_code for i in range(20)}
    valid = APIClient().get("/v1/jobs", **bearer(owner_key[1]))

    assert refused == {401}  # the address limit fails open, as the per-key limit does
    assert valid.status_code == 200
    assert list(denied().values_list("key_prefix", "remote_addr", "count")) == [(MORE, None, 20)]


def test_the_hourly_purge_deletes_refusal_rows_past_the_record_retention(owner_key, settings):
    with time_machine.travel(MINUTE, tick=False):
        APIClient().get("/v1/jobs", **bearer("madeup.key"))
    with time_machine.travel(MINUTE + timedelta(days=2), tick=False):
        APIClient().get("/v1/jobs", **bearer("recent.key"))
    assert denied().count() == 2
    later = MINUTE + timedelta(days=settings.SCRIBE_RECORD_RETENTION_DAYS, hours=1)

    erasure.retention_purge(now=later)

    assert list(denied().values_list("key_prefix", flat=True)) == ["recent"]
    assert KeyAuditEvent.objects.filter(action="created").count() == 1  # key events stay
