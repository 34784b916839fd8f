from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from transcription.models import Job, ServiceSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_operators_see_jobs_filtered_by_status_and_can_cancel_them(
    operator, api, job_settings, tone_wav
):
    with tone_wav.open("rb") as handle:
        job_id = api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps({})}, format="multipart"
        ).json()["job_id"]

    listing = operator.get("/admin/transcription/job/?status__exact=queued")
    assert listing.status_code == 200 and job_id in listing.content.decode()

    operator.post("/admin/transcription/job/", {"action": "cancel", "_selected_action": [job_id]})
    assert Job.objects.get(pk=job_id).status == "cancelled"


def test_operators_erase_jobs_and_cannot_delete_rows_that_would_leave_files(
    operator, api, job_settings, tone_wav
):
    with tone_wav.open("rb") as handle:
        job_id = api.post(
            "/v1/jobs",
            {"file": handle, "options": json.dumps({"prompt": "Quokka"})},
            format="multipart",
        ).json()["job_id"]

    operator.post("/admin/transcription/job/", {"action": "erase", "_selected_action": [job_id]})

    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled" and job.erased_at is not None
    assert job.opts.prompt is None and job.source_name == "" and job.source_path == ""
    assert operator.get(f"/admin/transcription/job/{job_id}/delete/").status_code == 403


def test_the_read_only_job_page_offers_no_save_buttons(operator, api, job_settings, tone_wav):
    with tone_wav.open("rb") as handle:
        job_id = api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps({})}, format="multipart"
        ).json()["job_id"]

    page = operator.get(f"/admin/transcription/job/{job_id}/change/")

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert 'name="_continue"' not in page.content.decode()
    assert operator.post(f"/admin/transcription/job/{job_id}/change/", {}).status_code == 403


def test_the_retention_period_is_edited_in_the_admin(operator, settings):
    settings.SCRIBE_RETENTION_DAYS = 7
    row = ServiceSettings.current()
    assert row.retention_days == 7

    response = operator.post(
        f"/admin/transcription/servicesettings/{row.pk}/change/", {"retention_days": 30}
    )

    assert response.status_code == 302
    assert ServiceSettings.current().retention_days == 30
