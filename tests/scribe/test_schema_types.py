"""What /v1/schema calls invalid is refused with a 400 that names the field, not read as
something else: a JSON number where a string or a boolean belongs, an empty ``?status=``,
a ``?page=`` that is not a page number (scribe/fields.py, scribe/pagination.py)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create

pytestmark = pytest.mark.django_db

TERM = {"canonical": "vLLM", "variants": ["브이엘엘엠"], "hotword": True, "priority": 10}


@pytest.fixture
def api(job_settings) -> APIClient:
    _, secret = api_key_create(owner_name="platform", scopes=["glossary", "transcribe"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def refused(response, field: str) -> str:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid"
    return str(error["fields"][field])


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"hotword": 0}, "hotword", "true or false"),
        ({"hotword": "yes"}, "hotword", "true or false"),
        ({"canonical": 5}, "canonical", "a string"),
        ({"variants": ["브이엘엘엠", 7]}, "variants", "a string"),
        ({"priority": "5"}, "priority", "whole number"),
        ({"priority": 5.0}, "priority", "whole number"),
        ({"priority": True}, "priority", "whole number"),
    ],
)
def test_a_term_field_of_another_json_type_is_refused(api, change, field, said):
    body = {"name": "platform", "terms": [{**TERM, **change}]}

    problem = refused(api.post("/v1/glossaries", body, format="json"), "terms")

    assert field in problem and said in problem


def test_a_glossary_name_that_is_a_number_is_refused(api):
    assert "a string" in refused(api.post("/v1/glossaries", {"name": 5}, format="json"), "name")


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"language": 0}, "language", "a string"),
        ({"text": 0}, "text", "a string"),
        ({"text": ["a"]}, "text", "a string"),
        ({"glossary_id": "3"}, "glossary_id", "whole number"),
    ],
)
def test_text_correction_refuses_a_field_of_another_json_type(api, change, field, said):
    body = {"text": "vLLM 써요", "language": "ko", "mode": "rules", **change}

    assert said in refused(api.post("/v1/text/correct", body, format="json"), field)


def test_the_right_json_types_are_still_taken(api):
    created = api.post("/v1/glossaries", {"name": "platform", "terms": [TERM]}, format="json")
    text = {"text": "브이엘엘엠", "language": "ko"}
    corrected = api.post("/v1/text/correct", text, format="json")

    assert created.status_code == 201, created.json()
    assert created.json()["terms"] == [TERM]
    assert corrected.status_code == 200, corrected.json()


@pytest.mark.parametrize("query", ["status=", "status=lost"])
def test_a_job_status_filter_outside_the_listed_ones_is_refused(api, query):
    assert "Use one of" in refused(api.get(f"/v1/jobs?{query}"), "status")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/glossaries"])
@pytest.mark.parametrize("page", ["", "0", "-1", "abc", "last", "1.0", "٣"])
def test_a_page_that_is_not_a_page_number_is_refused(api, path, page):
    assert "not a page number" in refused(api.get(f"{path}?page={page}"), "page")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/glossaries"])
def test_pages_from_one_are_served_and_one_past_the_last_is_not_found(api, path):
    assert api.get(f"{path}?page=1").status_code == 200
    assert api.get(f"{path}?page=0001").status_code == 200
    assert api.get(f"{path}?page=2").status_code == 404
    assert api.get(f"{path}?page={'9' * 5000}").status_code == 404


def test_the_schema_says_pages_start_at_one_on_both_lists(api):
    schema = api.get("/v1/schema", HTTP_ACCEPT="application/json").json()

    for path in ("/v1/jobs", "/v1/glossaries"):
        parameters = {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["page"] == {"type": "integer", "minimum": 1}
