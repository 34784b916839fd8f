"""Notes and keywords of jobs, through the API and the notes queue's task, against a real
OpenAI-compatible server on loopback (tests/llm.py). The same on real processes:
tests/e2e/test_notes_e2e.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from accounts.services import api_key_create
from glossary.models import LLMAuditRecord
from notes import services as notes_services
from notes.models import Note
from notes.tasks import note_run
from tests.conftest import result_body, result_json
from tests.llm import FakeLLM
from tests.transcription.test_jobs_api import run_worker, upload
from transcription.models import Job, JobEvent

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = {"notes": {"template": "meeting_notes"}, "keywords": True, "language": "en"}


@pytest.fixture
def llm(job_settings):
    with FakeLLM(ignore_schema_first=True) as server:
        job_settings.SCRIBE_LLM_BASE_URL = server.base_url
        yield server


def notes_run(job_id: str) -> None:
    """Do what the notes queue's workers do with the job's pending notes."""
    for note in Note.objects.filter(job_id=job_id, status="pending"):
        note_run(note.pk)


def completed(api, tone_wav, options=NOTES) -> str:
    job_id = upload(api, tone_wav, options).json()["job_id"]
    run_worker(job_id)
    assert Job.objects.get(pk=job_id).status == "completed"
    return job_id


def test_a_job_with_notes_and_keywords_completes_first_then_its_notes_fit_the_schema(
    api, llm, tone_wav
):
    response = upload(api, tone_wav, NOTES)
    assert response.status_code == 202, response.json()
    job_id = response.json()["job_id"]
    assert response.json()["notes"]["meeting_notes"]["status"] == "pending"
    assert response.json()["options"]["notes"] == {"template": "meeting_notes"}

    run_worker(job_id)
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed"  # the transcript does not wait for the notes
    assert job["notes"]["meeting_notes"]["status"] == "pending"
    assert api.get(f"/v1/jobs/{job_id}/result?format=txt").status_code == 200

    notes_run(job_id)

    job = api.get(f"/v1/jobs/{job_id}").json()
    notes = job["notes"]["meeting_notes"]
    assert notes["status"] == "completed", notes
    assert notes["attempts"] == 2  # the first answer ignored the schema; the retry fit
    assert notes["template_version"] == 1 and notes["model"]
    assert notes["usage"]["total_tokens"] == 36
    published = api.get("/v1/templates/meeting_notes").json()["schema"]
    assert not list(Draft202012Validator(published).iter_errors(notes["data"]))
    assert job["keywords"]["status"] == "completed"
    assert all(
        {"text", "category", "count", "first_seen"} <= set(k) for k in job["keywords"]["data"]
    )
    # The retry carried the validation errors, at a lower temperature.
    asked = [
        b
        for b in llm.structured_requests()
        if b["response_format"]["json_schema"]["name"] == "meeting_notes"
    ]
    assert "does not fit the JSON Schema" in asked[1]["messages"][-1]["content"]
    assert asked[1]["temperature"] < asked[0]["temperature"]
    assert asked[0]["response_format"]["json_schema"]["strict"] is True
    # The result JSON shows them too, and Markdown renders notes and transcript.
    result = result_json(api.get(f"/v1/jobs/{job_id}/result"))
    assert result["notes"]["meeting_notes"]["data"] == notes["data"] and "segments" in result
    markdown = result_body(api.get(f"/v1/jobs/{job_id}/result?format=md")).decode()
    assert "## Meeting notes" in markdown and "### Action items" in markdown
    assert "## Keywords" in markdown and "## Transcript" in markdown
    # Every answer audited: two for the notes, two for the keywords (each retried once).
    assert LLMAuditRecord.objects.filter(job_id=job_id).count() == 4


def test_asking_a_finished_job_for_another_template_makes_notes_without_transcribing_again(
    api, llm, tone_wav
):
    job_id = completed(api, tone_wav, {"language": "en"})
    attempts = Job.objects.get(pk=job_id).attempts

    first = api.post(f"/v1/jobs/{job_id}/notes", {"template": "call_summary"}, format="json")
    again = api.post(f"/v1/jobs/{job_id}/notes", {"template": "call_summary"}, format="json")

    assert first.status_code == again.status_code == 202
    assert Note.objects.filter(job_id=job_id).count() == 1  # one task while pending
    notes_run(job_id)
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["notes"]["call_summary"]["status"] == "completed"
    assert "sentiment" in job["notes"]["call_summary"]["data"]
    assert Job.objects.get(pk=job_id).attempts == attempts  # not transcribed again


def test_notes_are_refused_before_a_job_completes_and_for_an_unknown_template(api, llm, tone_wav):
    job_id = upload(api, tone_wav, {"language": "en"}).json()["job_id"]
    early = api.post(f"/v1/jobs/{job_id}/notes", {"template": "meeting_notes"}, format="json")
    assert early.status_code == 409 and early.json()["error"]["code"] == "job_not_ready"
    run_worker(job_id)
    unknown = api.post(f"/v1/jobs/{job_id}/notes", {"template": "minutes"}, format="json")
    assert unknown.status_code == 400
    assert "meeting_notes" in json.dumps(unknown.json())
    bad = upload(api, tone_wav, {"notes": {"template": "minutes"}})
    assert bad.status_code == 400 and "GET /v1/templates" in json.dumps(bad.json())


def test_the_llm_down_leaves_the_transcript_whole_and_the_notes_say_why(
    api, job_settings, tone_wav
):
    with FakeLLM() as server:
        job_settings.SCRIBE_LLM_BASE_URL = server.base_url
        job_id = completed(api, tone_wav)
    notes_run(job_id)  # the server is stopped now

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed"
    assert job["notes"]["meeting_notes"]["status"] == "failed"
    assert job["notes"]["meeting_notes"]["error"]["code"] == "llm_unavailable"
    assert "POST /v1/jobs/{id}/notes" in job["notes"]["meeting_notes"]["error"]["message"]
    assert job["keywords"]["status"] == "failed"
    assert api.get(f"/v1/jobs/{job_id}/result?format=txt").status_code == 200
    assert set(JobEvent.objects.filter(job_id=job_id).values_list("name", flat=True)) == {
        "job.completed",
        "job.notes.failed",
    }


def test_without_an_llm_or_off_its_allowlist_notes_are_refused_at_submission(
    api, job_settings, tone_wav
):
    job_settings.SCRIBE_LLM_BASE_URL = ""
    for options in ({"notes": {"template": "meeting_notes"}}, {"keywords": True}):
        response = upload(api, tone_wav, options)
        assert response.status_code == 400
        assert "SCRIBE_LLM_BASE_URL" in json.dumps(response.json())
    job_settings.SCRIBE_LLM_BASE_URL = "http://llm.example.com/v1"
    response = upload(api, tone_wav, {"notes": {"template": "meeting_notes"}})
    assert response.status_code == 400
    assert "SCRIBE_LLM_ALLOWED_HOSTS" in json.dumps(response.json())
    assert not Job.objects.exists()


def test_an_llm_host_taken_off_the_allowlist_after_submission_gets_nothing(
    api, llm, job_settings, tone_wav
):
    job_id = completed(api, tone_wav)
    job_settings.SCRIBE_LLM_ALLOWED_HOSTS = ["localhost"]
    notes_run(job_id)
    note = Note.objects.get(job_id=job_id, kind="notes")
    assert note.status == "failed" and note.error_code == "llm_refused"
    assert "SCRIBE_LLM_ALLOWED_HOSTS" in note.error_message
    assert llm.requests == []


def test_a_server_without_json_schema_is_asked_in_json_mode_and_its_answer_validated(
    api, job_settings, tone_wav
):
    with FakeLLM(refuse_json_schema=True) as server:
        job_settings.SCRIBE_LLM_BASE_URL = server.base_url
        job_id = completed(api, tone_wav, {"notes": {"template": "meeting_notes"}})
        notes_run(job_id)
    note = Note.objects.get(job_id=job_id)
    assert note.status == "completed", note.error_message
    assert note.parameters["response_format"] == "json_object"
    modes = [r["body"]["response_format"]["type"] for r in server.requests]
    assert modes == ["json_schema", "json_object"]
    assert "fits this JSON Schema" in server.requests[1]["body"]["messages"][0]["content"]


def test_an_answer_that_never_fits_fails_after_the_attempts_with_the_schema_errors(
    api, job_settings, tone_wav
):
    job_settings.SCRIBE_LLM_NOTES_ATTEMPTS = 2
    with FakeLLM(answer=lambda body: {"summary": 5}) as server:
        job_settings.SCRIBE_LLM_BASE_URL = server.base_url
        job_id = completed(api, tone_wav, {"notes": {"template": "meeting_notes"}})
        notes_run(job_id)
    note = api.get(f"/v1/jobs/{job_id}").json()["notes"]["meeting_notes"]
    assert note["status"] == "failed" and note["attempts"] == 2
    assert note["error"]["code"] == "llm_invalid_answer"
    assert "at $.summary: 5 is not of type 'string'" in note["error"]["message"]
    assert len(server.requests) == 2


def test_a_failed_job_fails_its_notes_and_the_sweep_sends_lost_ones_again(
    api, llm, job_settings, tone_wav
):
    job_id = upload(api, tone_wav, NOTES).json()["job_id"]
    Job.objects.get(pk=job_id).mark_failed(code="test", message="failed for the test")
    assert {n.status for n in Note.objects.filter(job_id=job_id)} == {"failed"}
    assert Note.objects.filter(job_id=job_id, error_code="no_transcript").count() == 2

    done = completed(api, tone_wav)
    Note.objects.filter(job_id=done).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert notes_services.notes_sweep() == 2
    assert all(
        n.enqueued_at > timezone.now() - timedelta(minutes=1)
        for n in Note.objects.filter(job_id=done)
    )


def test_erasing_a_job_leaves_no_note_and_a_note_finishing_after_writes_nothing(api, llm, tone_wav):
    job_id = completed(api, tone_wav)
    notes_run(job_id)
    assert Note.objects.filter(job_id=job_id).count() == 2
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not Note.objects.filter(job_id=job_id).exists()
    gone = api.post(f"/v1/jobs/{job_id}/notes", {"template": "meeting_notes"}, format="json")
    assert gone.status_code == 410

    running = completed(api, tone_wav)
    note = Note.objects.get(job_id=running, kind="notes")
    assert note.claim(lease_until=timezone.now() + timedelta(minutes=5))
    Job.objects.get(pk=running).mark_erased(now=timezone.now(), content_free={})
    Note.objects.filter(job_id=running).delete()  # what job_erased's receiver does
    assert note.finish(status="completed", data={"summary": "late"}) is False
    assert not Note.objects.filter(job_id=running).exists()


def test_notes_events_reach_the_callback(api, llm, job_settings, tone_wav, owner_key):
    from webhooks.models import Delivery
    from webhooks.services import job_events_sweep, webhook_secret_rotate

    job_settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook_secret_rotate(owner=owner_key[0].owner)
    options = {**NOTES, "callback_url": "http://127.0.0.1:9/hook"}
    job_id = completed(api, tone_wav, options)
    notes_run(job_id)
    job_events_sweep()
    events = sorted(Delivery.objects.filter(job_id=job_id).values_list("event", flat=True))
    assert events == ["job.completed", "job.notes.completed", "job.notes.completed"]
    last = Delivery.objects.filter(job_id=job_id, event="job.notes.completed").last()
    assert json.loads(last.body)["notes"]["meeting_notes"]["status"] == "completed"


def test_a_live_sessions_transcript_can_have_notes_made_after_it(api, llm, owner_key):
    from realtime import services as stream_services
    from tests.realtime.test_stream_recovery import final
    from transcription.options import JobOptions

    key, _ = owner_key
    options = JobOptions(language="en")
    job = stream_services.stream_job_create(owner_id=key.owner_id, options=options)
    review = stream_services.session_review(owner_id=key.owner_id, options=options)
    stream_services.stream_final_save(
        job_id=job.id, final=final(0, 0.0, "Minsu upgrades the Kubernetes cluster"), review=review
    )
    stream_services.stream_job_recover(job=Job.objects.get(pk=job.pk))

    asked = api.post(f"/v1/jobs/{job.id}/notes", {"template": "meeting_notes"}, format="json")
    assert asked.status_code == 202, asked.json()
    notes_run(str(job.id))

    notes = api.get(f"/v1/jobs/{job.id}").json()["notes"]["meeting_notes"]
    assert notes["status"] == "completed", notes
    sent = [r["body"]["messages"][1]["content"] for r in llm.requests]
    assert any("Kubernetes cluster" in text for text in sent)


def test_notes_go_to_this_deployments_own_notes_queue(api, llm, job_settings, tone_wav):
    """Two deployments sharing a Redis must not take each other's notes: the notes queue
    is named after the deployment, as the job queue is (a notes worker of another
    deployment once took a message and found no such note)."""
    from django_q.models import OrmQ

    job_id = completed(api, tone_wav)
    keys = set(OrmQ.objects.values_list("key", flat=True))
    assert job_settings.SCRIBE_NOTES_QUEUE in keys, keys
    assert job_settings.SCRIBE_NOTES_QUEUE.startswith(job_settings.SCRIBE_DEPLOYMENT)
    assert "notes" not in keys
    assert Note.objects.filter(job_id=job_id).count() == 2


def test_the_system_status_shows_the_notes_queue_and_says_when_nobody_makes_them(
    api, llm, job_settings, tone_wav
):
    _, secret = api_key_create(owner_name="ops", scopes=["admin"])
    admin_api = APIClient()
    admin_api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    job_id = upload(api, tone_wav, NOTES).json()["job_id"]

    fresh = admin_api.get("/v1/system").json()["notes"]
    Note.objects.filter(job_id=job_id).update(created_at=timezone.now() - timedelta(minutes=10))
    stalled = admin_api.get("/v1/system").json()["notes"]
    job_settings.SCRIBE_LLM_BASE_URL = ""
    without = admin_api.get("/v1/system").json()["notes"]

    assert fresh["llm_configured"] and fresh["pending"] == 2 and fresh["problem"] is None
    assert fresh["queue"].endswith("-notes")
    assert stalled["oldest_pending_age_sec"] >= 600
    assert "qcluster --name notes" in stalled["problem"]
    assert not without["llm_configured"] and "SCRIBE_LLM_BASE_URL" in without["problem"]
