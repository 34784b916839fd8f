"""Templates: the shipped ones, the API that lists them, and the admin that refuses what
cannot work, versions every change and tries a template on pasted text."""

from __future__ import annotations

import pytest
from django.test import Client
from jsonschema import Draft202012Validator

from notes.models import Template
from tests.llm import FakeLLM

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def form(template: Template, **changes) -> dict:
    import json

    data = {
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "language": template.language,
        "schema": json.dumps(template.schema),
        "prompt": template.prompt,
        "enabled": "on",
    }
    return {**data, **changes}


def test_the_shipped_templates_are_listed_with_valid_schemas(api):
    listed = api.get("/v1/templates").json()["templates"]
    slugs = {t["slug"] for t in listed}
    assert {"meeting_notes", "call_summary"} <= slugs
    for template in listed:
        Draft202012Validator.check_schema(template["schema"])
        assert "{{ transcript }}" in template["prompt"] and template["version"] >= 1
    meeting = api.get("/v1/templates/meeting_notes").json()
    tags = meeting["schema"]["properties"]["tags"]
    assert (tags["minItems"], tags["maxItems"]) == (1, 5)
    action = meeting["schema"]["properties"]["action_items"]["items"]["properties"]
    assert set(action) == {"task", "owner", "due"}
    missing = api.get("/v1/templates/minutes")
    assert missing.status_code == 404 and "GET /v1/templates" in missing.json()["error"]["message"]


def test_the_admin_refuses_an_invalid_schema_and_a_prompt_without_the_transcript(operator):
    template = Template.objects.get(slug="meeting_notes")
    url = f"/admin/notes/template/{template.pk}/change/"

    bad_schema = operator.post(url, form(template, schema='{"type": "object", "properties": 5}'))
    assert bad_schema.status_code == 200
    assert "Not a valid JSON Schema" in bad_schema.content.decode()
    no_transcript = operator.post(url, form(template, prompt="Summarise the meeting."))
    assert "never uses the transcript" in no_transcript.content.decode()
    assert Template.objects.get(pk=template.pk).version == 1


def test_every_change_raises_the_version_and_a_plain_save_does_not(operator):
    template = Template.objects.get(slug="call_summary")
    url = f"/admin/notes/template/{template.pk}/change/"
    changed = operator.post(url, form(template, prompt=template.prompt + "\nBe brief."))
    assert changed.status_code == 302
    assert Template.objects.get(pk=template.pk).version == 2
    operator.post(url, form(Template.objects.get(pk=template.pk)))
    assert Template.objects.get(pk=template.pk).version == 2


def test_the_admin_tries_a_template_on_pasted_text(operator, settings):
    template = Template.objects.get(slug="meeting_notes")
    with FakeLLM() as llm:
        settings.SCRIBE_LLM_BASE_URL = llm.base_url
        page = operator.post(
            f"/admin/notes/template/{template.pk}/try/",
            {
                "transcript": "Minsu will upgrade the Kubernetes cluster by Friday.",
                "language": "en",
            },
        )
    text = page.content.decode()
    assert page.status_code == 200 and "action_items" in text and "Kubernetes" in text
    assert "Kubernetes cluster" in llm.requests[0]["body"]["messages"][1]["content"]
