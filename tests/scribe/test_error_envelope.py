"""Every non-2xx answer of the API is the one JSON envelope, including the errors raised
before a DRF view runs (no route, a Host not allowed) and a server failure."""

from __future__ import annotations

import pytest
from django.test import Client
from django.test.client import RequestFactory

from accounts.models import Owner
from scribe.errors import bad_request, page_not_found
from transcription.models import Job

pytestmark = pytest.mark.django_db


def envelope(response) -> dict:
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def secret(owner_key) -> str:
    return owner_key[1]


def test_a_job_id_that_is_not_a_uuid_is_a_json_not_found(secret):
    response = Client().get("/v1/jobs/123", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 404
    error = envelope(response)
    assert error["code"] == "not_found" and "UUID" in error["message"]


def test_another_owners_job_and_a_bad_page_both_answer_not_found(api):
    theirs = Job.objects.create(owner=Owner.objects.create(name="someone else"))

    job = api.get(f"/v1/jobs/{theirs.pk}")
    page = api.get("/v1/jobs?page=99")

    assert (job.status_code, envelope(job)["code"]) == (404, "not_found")
    assert (page.status_code, envelope(page)["code"]) == (404, "not_found")


def test_a_host_not_allowed_gets_a_json_400(secret):
    response = Client().get(
        "/v1/jobs", HTTP_HOST="evil.example", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )

    assert response.status_code == 400
    assert envelope(response)["code"] == "bad_request"


def test_a_server_failure_gets_a_json_500(secret, settings):
    # A rate DRF cannot parse (the settings reader refuses it; an override skips the
    # reader) fails every authenticated request inside the view.
    settings.SCRIBE_RATE_LIMIT = "10/week"
    client = Client(raise_request_exception=False)

    response = client.get("/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 500
    assert envelope(response)["code"] == "internal_error"


def test_pages_outside_the_api_keep_djangos_own_400_and_404():
    request = RequestFactory().get("/admin/nothing")

    assert "application/json" not in page_not_found(request)["Content-Type"]
    assert "application/json" not in bad_request(request)["Content-Type"]


def test_options_on_an_upload_route_and_an_empty_multipart_body_answer_in_shape(
    secret, job_settings
):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    options = Client().options("/v1/jobs", **auth)
    empty = Client().post(
        "/v1/jobs", data=b"", content_type="multipart/form-data; boundary=xyz", **auth
    )

    assert options.status_code == 200, options.content[:300]
    assert "POST" in options["Allow"]
    assert empty.status_code == 400
    assert "file" in envelope(empty)["fields"]
