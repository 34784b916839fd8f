"""The API answers as its OpenAPI schema says, for whatever a client may send.

Schemathesis generates requests from /v1/schema (valid and invalid bodies, parameters,
methods) and checks every answer: no 5xx, a status code and a content type the schema
documents, a body that matches the documented response. Generated clients are built from
that schema, so a gap here is a wrong client somewhere else.

Every check runs on every operation, but for one: that a schema-valid request is accepted
(positive_data_acceptance) is not asked of the two uploads, ``POST /v1/jobs`` and
``POST /v1/audio/transcriptions``. Their ``file`` is any bytes in OpenAPI, which cannot
say "audio with a sound track" (a PNG gets 415), and ``POST /v1/jobs``'s ``options`` is a
JSON document in a form field. The JSON operations pass it: request strings carry patterns
for what DRF refuses (NUL, whitespace only; scribe/openapi.py), a taken name or a
canonical listed twice is a 409 and an unknown glossary_id a 404.

The database is used as in production, with commits (``transaction=True``): the OpenAI
endpoint is async and does its database work in pool threads, which neither see a test
transaction's rows nor may write while it holds SQLite's lock.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.django_db(transaction=True)

# Requests in all (the floor): spread over the operations the schema lists.
MIN_REQUESTS = 2000
UPLOADS = {("POST", "/v1/jobs"), ("POST", "/v1/audio/transcriptions")}


@pytest.fixture
def keep_test_connection():
    """What Django's test client does around a request: the WSGI app must not close the
    test database's connection at the end of each request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_settings(job_settings, keep_test_connection):
    job_settings.ALLOWED_HOSTS = ["localhost"]
    job_settings.SCRIBE_QUEUE_MAX = 10_000  # queue_full is documented, but let bodies vary
    # Throttling answers 429 (documented) to most of a flood: fuzz the handlers instead.
    # Not DEFAULT_THROTTLE_CLASSES: APIView copies it when DRF loads, so overriding it
    # later changes nothing (every operation after the first few answered only 429).
    job_settings.SCRIBE_RATE_LIMIT = ""
    # Its probes without a key would be throttled per address (429) after the first 60.
    job_settings.SCRIBE_AUTH_FAILURE_RATE_LIMIT = None
    return job_settings


def test_every_operation_answers_as_documented(fuzz_settings):
    from accounts.services import api_key_create
    from scribe.wsgi import application

    _, secret = api_key_create(
        owner_name="fuzzer", scopes=["transcribe", "stream", "glossary", "admin"]
    )
    schema = schemathesis.openapi.from_wsgi("/v1/schema", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, "the schema lists fewer operations than the API has"
    per_operation = -(-MIN_REQUESTS // len(operations))  # ceiling division
    sent = 0

    for operation in operations:
        upload = (operation.method.upper(), operation.path) in UPLOADS
        excluded = [positive_data_acceptance] if upload else []

        @given(case=operation.as_strategy())
        @settings(
            max_examples=per_operation,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            nonlocal sent
            case.call_and_validate(
                headers={"Authorization": f"Bearer {secret}"},
                excluded_checks=excluded,  # noqa: B023 - check() runs in this iteration
            )
            sent += 1

        check()

    assert sent >= MIN_REQUESTS
