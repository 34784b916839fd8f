"""/v1/schema's links: which answer's ids feed which operation (scribe/schema.py). The
socket contract fuzz follows them; here, that each one names a real operation and its
parameters, and that the ids it reads are where the answers put them."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(job_settings) -> dict:
    return APIClient().get("/v1/schema", HTTP_ACCEPT="application/json").json()


def operations(schema: dict) -> dict[str, dict]:
    return {
        operation["operationId"]: operation
        for item in schema["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_every_link_names_an_operation_and_its_parameters(schema):
    by_id = operations(schema)
    links = [
        (source, code, link)
        for source, operation in by_id.items()
        for code, response in operation["responses"].items()
        for link in response.get("links", {}).values()
    ]

    assert len(links) >= 15
    for source, code, link in links:
        target = by_id[link["operationId"]]
        names = {p["name"] for p in target.get("parameters", [])}
        assert set(link["parameters"]) <= names, (source, code, link)


def test_a_created_job_and_glossary_lead_to_their_reads(schema):
    by_id = operations(schema)
    job = by_id["v1_jobs_create"]["responses"]["202"]["links"]
    glossary = by_id["v1_glossaries_create"]["responses"]["201"]["links"]
    openai = by_id["audio_transcriptions_create"]["responses"]["504"]["links"]

    assert job["GetJob"] == {
        "operationId": "v1_jobs_retrieve",
        "parameters": {"job_id": "$response.body#/job_id"},
    }
    assert glossary["GetGlossary"]["parameters"] == {"id": "$response.body#/id"}
    assert openai["GetJob"]["parameters"] == {"job_id": "$response.header.X-Scribe-Job-Id"}


def test_an_upload_says_its_file_is_audio_or_video(schema):
    for path in ("/v1/jobs", "/v1/audio/transcriptions"):
        form = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert form["encoding"]["file"]["contentType"] == "audio/*, video/*"


def test_a_created_jobs_answer_holds_the_id_its_links_read(api, job_settings, tone_wav):
    with tone_wav.open("rb") as audio:
        created = api.post("/v1/jobs", {"file": audio}, format="multipart")

    assert created.status_code == 202, created.json()
    job_id = created.json()["job_id"]  # $response.body#/job_id
    assert api.get(f"/v1/jobs/{job_id}").status_code == 200
    assert api.get("/v1/jobs?page=1").json()["results"][0]["job_id"] == job_id
