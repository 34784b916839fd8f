"""/v1/schema documents the OpenAI-compatible transcription endpoint as it answers."""

from __future__ import annotations

import pytest

from openai_compat.serializers import GRANULARITIES, RESPONSE_FORMATS, TranscriptionFormSerializer

pytestmark = pytest.mark.django_db
PATH = "/v1/audio/transcriptions"


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/v1/schema?format=json")
    assert response.status_code == 200
    return response.json()


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_the_schema_lists_the_transcription_upload_as_a_post(schema):
    assert PATH in schema["paths"]
    assert set(schema["paths"][PATH]) - {"parameters"} == {"post"}


def test_its_form_is_the_file_and_every_field_the_endpoint_accepts(schema):
    operation = schema["paths"][PATH]["post"]
    form = resolve(schema, operation["requestBody"]["content"]["multipart/form-data"]["schema"])

    assert set(form["properties"]) == {"file", *TranscriptionFormSerializer().fields}
    assert {"file", "model"} <= set(form["required"])
    assert form["properties"]["file"]["format"] == "binary"
    assert set(form["properties"]["response_format"]["enum"]) == set(RESPONSE_FORMATS)
    granularity = form["properties"]["timestamp_granularities"]["items"]
    assert set(granularity["enum"]) == set(GRANULARITIES)


def test_its_answers_are_each_response_format_or_an_event_stream(schema):
    answers = schema["paths"][PATH]["post"]["responses"]

    assert {"application/json", "text/plain", "text/event-stream"} <= set(answers["200"]["content"])
    assert "X-Scribe-Job-Id" in answers["200"]["headers"]


def test_its_errors_are_documented_in_openai_shape_not_scribe_shape(schema):
    answers = schema["paths"][PATH]["post"]["responses"]

    errors = {status: answer for status, answer in answers.items() if int(status) >= 400}

    assert {"400", "401", "403", "405", "413", "415", "429", "504"} <= set(errors)
    for status, answer in errors.items():
        error = resolve(schema, answer["content"]["application/json"]["schema"])
        inner = resolve(schema, error["properties"]["error"])
        assert set(inner["properties"]) == {"message", "type", "param", "code"}, status
