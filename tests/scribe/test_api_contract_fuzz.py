"""The API answers as its OpenAPI schema says, for whatever a client may send.

Schemathesis generates requests from /v1/schema (valid and invalid bodies, parameters,
methods) and checks every answer: no 5xx, a status code and a content type the schema
documents, a body that matches the documented response. Generated clients are built from
that schema, so a gap here is a wrong client somewhere else.

Not checked: that every schema-valid request is accepted. Some rules cannot be said in
OpenAPI (no NUL characters in text, a term listed twice in one glossary, a name the
caller already uses); those get 400 or 409 in the documented error shape instead.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.django_db

# Requests in all (the floor): spread over the operations the schema lists.
MIN_REQUESTS = 2000


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
    job_settings.REST_FRAMEWORK = {
        **job_settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": [],
    }
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
                excluded_checks=[positive_data_acceptance],
            )
            sent += 1

        check()

    assert sent >= MIN_REQUESTS
