"""The API answers as its OpenAPI schema says, for whatever a client may send.

Schemathesis generates requests from /v1/schema (valid and invalid bodies, parameters,
methods) and checks every answer: no 5xx, a status code and a content type the schema
documents, a body that matches the documented response, invalid data refused. Generated
clients are built from that schema, so a gap here is a wrong client somewhere else.

Twice: in-process against the WSGI app (quick), and against daphne over a socket, as
clients reach it — daphne's ASGI path parses bodies in its own way (scribe/daphne_http.py)
— with valid and invalid data, then the stateful phase, which follows the schema's links
(scribe/schema.py) so that the ids it sends are those of jobs and glossaries it made. The
upload's ``file`` there is a real WAV (the schema says the part is audio or video), so
``POST /v1/jobs`` makes jobs; no worker runs them, and ``SCRIBE_OPENAI_WAIT_S=0`` and
``SCRIBE_OPENAI_STREAM_WAIT_S=0`` have the OpenAI endpoint answer at once that its job is
still running (504, or an error event) instead of waiting for it.

Every check runs on every operation, but:
- that a schema-valid request is accepted (positive_data_acceptance) is not asked of the
  three uploads, ``POST /v1/jobs``, ``POST /v1/audio/transcriptions`` and ``POST
  /v1/detect``. OpenAPI cannot say "audio with a sound track" (a PNG gets 415), ``POST
  /v1/jobs``'s ``options`` is a JSON document in a form field, a model name is any served
  one, and a raw PCM body needs ``?encoding=&sample_rate=`` that a file does not. The
  JSON operations pass it: request strings carry patterns for what DRF refuses (NUL,
  whitespace only; scribe/openapi.py), a taken name or a canonical listed twice is a 409
  and an unknown glossary_id a 404.
- that a deleted resource is gone (use_after_free) is not asked of jobs: a deleted job is
  kept as a record without its content (status, times), and ``GET`` answers it.

The in-process database is used as in production, with commits (``transaction=True``): the
OpenAI endpoint is async and does its database work in pool threads, which neither see a
test transaction's rows nor may write while it holds SQLite's lock.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES

from tests.e2e.stack import api_key, sqlite_daphne
from tests.media import write_tone_wav

# Requests in all (the floor): spread over the operations the schema lists.
MIN_REQUESTS = 2000
STEPS = 500  # calls in the stateful phase, beyond MIN_REQUESTS
SCOPES = ("transcribe", "stream", "glossary", "admin")
SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": True,
    "suppress_health_check": list(HealthCheck),
}


# What schemathesis is told beyond the schema (its config file's format, scribe's reasons):
# - the key is ours to send, neither left out nor made up (the refusals of a missing or an
#   unknown key have their own tests, tests/accounts);
# - the uploads are not asked to accept every schema-valid request, and a deleted job is
#   not asked to be gone (the module's docstring says why);
# - a job's result may be gone for good (410: erased by a DELETE the stateful phase sent,
#   or past the retention), a documented answer to a valid request;
# - asking a job for notes names a template that must exist (GET /v1/templates lists them,
#   an operator adds them: no schema can list them) on a server with an LLM (none here):
#   400 says which, and 410 a transcript erased or past the retention, as for the result;
# - the OpenAI endpoint's 504 is its documented answer when the job is still running after
#   SCRIBE_OPENAI_WAIT_S (no worker runs here), not a server failing;
# - in the stateful phase, that invalid data is refused is not asked (the stateless part
#   asks it of every operation): a link's value replaces the field schemathesis made
#   invalid (a glossary_id: that of a glossary it made), so such a request arrives valid.
CONFIG = """
[generation]
with-security-parameters = false

[phases.stateful.checks]
negative_data_rejection.enabled = false

[[operations]]
include-operation-id = ["v1_jobs_create", "audio_transcriptions_create", "v1_detect_create"]
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path-regex = "^/v1/jobs/"
checks.use_after_free.enabled = false

[[operations]]
include-operation-id = "v1_jobs_result_retrieve"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 410, 429]

[[operations]]
include-operation-id = "jobs_notes_create"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", 400, 401, 403, 404, 409, 410, 429,
]

[[operations]]
include-operation-id = "audio_transcriptions_create"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", 504]
"""


def config() -> SchemathesisConfig:
    return SchemathesisConfig.from_str(CONFIG)


def send_every_operation(schema, *, headers, total: int, modes, **call) -> int:
    """``total`` requests or more, spread over the operations and ``modes``; an operation
    short of its share (nothing in it can be made invalid, or Hypothesis ran out of
    different requests) leaves the rest to the next ones."""
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, "the schema lists fewer operations than the API has"
    runs = [(mode, operation) for mode in modes for operation in operations]
    sent = 0
    for done, (mode, operation) in enumerate(runs):
        share = max(1, -(-(total - sent) // (len(runs) - done)))  # ceiling division

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=share, **SETTINGS)
        def check(case) -> None:
            nonlocal sent
            case.call_and_validate(headers=headers, **call)
            sent += 1

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, f"no request for {operation.label}"
    return sent


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
    job_settings.SCRIBE_DETECT_RATE_LIMIT = ""
    # Its probes without a key would be throttled per address (429) after the first 60.
    job_settings.SCRIBE_AUTH_FAILURE_RATE_LIMIT = None
    return job_settings


@pytest.mark.django_db(transaction=True)
def test_every_operation_answers_as_documented(fuzz_settings):
    from accounts.services import api_key_create
    from scribe.wsgi import application

    _, secret = api_key_create(owner_name="fuzzer", scopes=list(SCOPES))
    schema = schemathesis.openapi.from_wsgi("/v1/schema", application, config=config())
    sent = send_every_operation(
        schema,
        headers={"Authorization": f"Bearer {secret}"},
        total=MIN_REQUESTS,
        modes=[GenerationMode.POSITIVE],
    )
    assert sent >= MIN_REQUESTS


@contextlib.contextmanager
def audio_parts(wav: Path):
    """The ``file`` part of an upload, where the schema says audio: a real WAV."""
    schemathesis.openapi.media_type("audio/wav", st.just(wav.read_bytes()))
    try:
        yield
    finally:
        MEDIA_TYPE_STRATEGIES.pop("audio/wav", None)


@pytest.mark.e2e
def test_every_operation_answers_as_documented_over_a_socket(tmp_path, model_dir):
    served = sqlite_daphne(
        tmp_path,
        SCRIBE_BATCH_MODEL=str(model_dir),
        SCRIBE_REALTIME_MODEL=str(model_dir),
        SCRIBE_OFFLINE="true",
        SCRIBE_RATE_LIMIT="",
        SCRIBE_DETECT_RATE_LIMIT="",
        # Keyless probes are throttled per address (429) after the first 60 a minute.
        SCRIBE_AUTH_FAILURE_RATE_LIMIT="",
        SCRIBE_QUEUE_MAX="10000",
        SCRIBE_OPENAI_WAIT_S="0",
        SCRIBE_OPENAI_STREAM_WAIT_S="0",
    )
    wav = write_tone_wav(tmp_path / "tone.wav", seconds=0.5)
    with served as (port, environ), audio_parts(wav):
        headers = {"Authorization": f"Bearer {api_key(environ, *SCOPES)}"}
        schema = schemathesis.openapi.from_url(
            f"http://127.0.0.1:{port}/v1/schema", config=config()
        )
        sent = send_every_operation(
            schema,
            headers=headers,
            total=MIN_REQUESTS,
            modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            timeout=30,
        )
        steps = follow_links(schema, headers=headers, steps_wanted=STEPS)
        log = (tmp_path / "daphne.log").read_text()

    assert sent >= MIN_REQUESTS
    assert steps >= STEPS
    assert "Traceback" not in log


def follow_links(schema, *, headers, steps_wanted: int) -> int:
    """The stateful phase: scenarios of calls that feed each answer's ids to the next call,
    in suites of scenarios until ``steps_wanted`` calls were made."""
    steps = 0

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            return {"headers": headers, "timeout": 30}

        def after_call(self, response, case):
            nonlocal steps
            steps += 1
            super().after_call(response, case)

    # Generation only, as schemathesis runs it. A scenario's rules depend on what the server
    # holds by then (whether a bundle of ids is empty), so Hypothesis may find a sequence of
    # choices it made earlier no longer possible (FlakyStrategyDefinition); as schemathesis
    # does, that ends the suite and another one starts. A failure is raised as it is.
    scenarios = settings(
        max_examples=40,
        stateful_step_count=10,
        phases=[Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    for seed in range(50):
        if steps >= steps_wanted:
            break
        with contextlib.suppress(FlakyStrategyDefinition):
            hypothesis.seed(seed)(Scenarios).run(settings=scenarios)
    return steps
