"""DELETE erases a job's content; cancel keeps it; retention erases the same; forget erases
an owner's all. The canary search over every column of PostgreSQL is
tests/e2e/test_erasure_e2e.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.conf import Conf

from accounts.services import api_key_create
from glossary.models import Glossary
from realtime import services as stream_services
from tests.media import write_tone_wav
from tests.realtime.test_stream_recovery import final
from tests.transcription.test_jobs_api import files_under, run_worker, upload, worker_started
from transcription import erasure, recovery
from transcription.models import Job
from transcription.options import JobOptions
from webhooks.models import Delivery
from webhooks.services import webhook_secret_rotate

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = {"prompt": "Quokka budget review", "hotwords": ["Quokkafest"], "language": "en"}


def finished(api, tone_wav, options=CONTENT) -> str:
    job_id = upload(api, tone_wav, options).json()["job_id"]
    run_worker(job_id)
    assert Job.objects.get(pk=job_id).status == "completed"
    return job_id


def assert_content_free(job: Job) -> None:
    row = json.dumps(
        [job.options, job.run, job.source_name, job.error_message, job.metrics], default=str
    )
    assert "Quokka" not in row and "tone" not in row, row
    assert job.result_path == "" and job.source_path == ""
    assert job.erased_at is not None
    assert not job.stream_segments.exists()


def test_delete_erases_a_finished_job_at_once_and_keeps_a_content_free_record(
    api, job_settings, tone_wav
):
    job_id = finished(api, tone_wav)
    before = Job.objects.get(pk=job_id)
    assert "Quokka" in json.dumps(before.run)  # the run record holds the prompt it used
    assert files_under(job_settings.MEDIA_ROOT)

    response = api.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 204 and not response.content
    job = Job.objects.get(pk=job_id)
    assert_content_free(job)
    assert files_under(job_settings.MEDIA_ROOT) == []
    shown = api.get(f"/v1/jobs/{job_id}").json()
    assert shown["status"] == "completed" and shown["erased_at"]
    assert shown["finished_at"] and shown["summary"]["duration_sec"] == pytest.approx(3.0)
    assert shown["results"] is None and shown["source"]["name"] == ""
    assert "hotwords" not in shown["options"] and "prompt" not in shown["options"]
    gone = api.get(f"/v1/jobs/{job_id}/result")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "erased"
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204  # again: still 204


def test_delete_cancels_a_queued_job_and_erases_it(api, job_settings, tone_wav):
    job_id = upload(api, tone_wav, CONTENT).json()["job_id"]

    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204

    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled"
    assert_content_free(job)
    assert files_under(job_settings.MEDIA_ROOT) == []
    assert api.get(f"/v1/jobs/{job_id}/result").json()["error"]["code"] == "erased"


def test_delete_on_a_processing_job_answers_202_and_erases_it_when_it_stops(
    api, job_settings, tmp_path
):
    long_tone = write_tone_wav(tmp_path / "Quokka minutes.wav", seconds=900)
    job_id = upload(api, long_tone, {**CONTENT, "vad": False}).json()["job_id"]
    worker = worker_started(job_id)

    response = api.delete(f"/v1/jobs/{job_id}")
    worker.join()

    assert response.status_code == 202
    assert response.json()["erase_requested_at"] and response.json()["erased_at"] is None
    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled"
    assert_content_free(job)
    assert files_under(job_settings.MEDIA_ROOT) == []
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204


def test_an_erasure_a_dead_process_left_is_finished_by_recovery(api, job_settings, tone_wav):
    job_id = finished(api, tone_wav)
    # The process that ended the job died before its erasure ran: asked, not done.
    Job.objects.filter(pk=job_id).update(erase_requested_at=timezone.now())

    recovery.jobs_recover()

    assert_content_free(Job.objects.get(pk=job_id))


def test_cancel_is_a_post_and_keeps_the_record_and_its_content(api, job_settings, tone_wav):
    job_id = upload(api, tone_wav, CONTENT).json()["job_id"]

    body = api.post(f"/v1/jobs/{job_id}/cancel").json()

    assert body["status"] == "cancelled" and body["erased_at"] is None
    job = Job.objects.get(pk=job_id)
    assert job.source_name == "tone.wav" and job.opts.prompt == CONTENT["prompt"]
    assert api.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"


def test_another_owners_job_can_be_neither_erased_nor_cancelled(api, job_settings, tone_wav):
    _, other_secret = api_key_create(owner_name="other-team", scopes=["transcribe"])
    other = api.__class__()
    other.credentials(HTTP_X_API_KEY=other_secret)
    theirs = finished(other, tone_wav)

    assert api.delete(f"/v1/jobs/{theirs}").status_code == 404
    assert api.post(f"/v1/jobs/{theirs}/cancel").status_code == 404
    assert Job.objects.get(pk=theirs).erased_at is None


def test_a_live_sessions_finals_are_erased_with_it(owner_key, api, job_settings):
    key, _ = owner_key
    options = JobOptions(hotwords=("Quokkafest",))
    job = stream_services.stream_job_create(owner_id=key.owner_id, options=options)
    review = stream_services.session_review(owner_id=key.owner_id, options=options)
    stream_services.stream_final_save(
        job_id=job.id, final=final(0, 0.0, "Quokka numbers"), review=review
    )
    stream_services.stream_job_recover(job=Job.objects.get(pk=job.pk))

    assert api.delete(f"/v1/jobs/{job.id}").status_code == 204

    assert_content_free(Job.objects.get(pk=job.pk))
    assert files_under(job_settings.MEDIA_ROOT) == []


def test_webhook_bodies_are_rewritten_without_the_content(api, owner_key, job_settings, tone_wav):
    job_settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook_secret_rotate(owner=owner_key[0].owner)
    # The receiver is not listening: the delivery stays pending, its body as first sent.
    job_settings.Q_CLUSTER = {**job_settings.Q_CLUSTER, "sync": True}
    Conf.SYNC = True
    try:
        job_id = finished(api, tone_wav, {**CONTENT, "callback_url": "http://127.0.0.1:9/hook"})
    finally:
        Conf.SYNC = False
    delivery = Delivery.objects.get(job_id=job_id)
    assert "Quokka" in delivery.body

    api.delete(f"/v1/jobs/{job_id}")

    body = Delivery.objects.get(pk=delivery.pk).body
    assert "Quokka" not in body and "tone.wav" not in body
    assert json.loads(body)["erased_at"]


def test_retention_erases_the_same_content_and_the_record_retention_deletes_rows(
    api, job_settings, tone_wav
):
    done = finished(api, tone_wav)
    waiting = upload(api, tone_wav, CONTENT).json()["job_id"]
    after_results = timezone.now() + timedelta(days=job_settings.SCRIBE_RETENTION_DAYS, hours=1)
    after_records = timezone.now() + timedelta(days=job_settings.SCRIBE_RECORD_RETENTION_DAYS + 1)

    assert erasure.retention_purge(now=after_results) == (1, 0)

    job = Job.objects.get(pk=done)
    assert_content_free(job)
    assert job.result_purged_at is not None
    gone = api.get(f"/v1/jobs/{done}/result")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "result_expired"
    assert erasure.retention_purge(now=after_records) == (0, 1)
    assert not Job.objects.filter(pk=done).exists()
    queued = Job.objects.get(pk=waiting)  # never touched while it waits
    assert queued.opts.prompt == CONTENT["prompt"] and queued.source_path


def test_forget_erases_every_job_of_an_owner_after_its_name_is_typed(
    api, owner_key, job_settings, tone_wav, monkeypatch
):
    owner = owner_key[0].owner
    done = finished(api, tone_wav)
    queued = upload(api, tone_wav, CONTENT).json()["job_id"]
    Glossary.objects.create(owner=owner, name="Quokka terms")
    _, other_secret = api_key_create(owner_name="other-team", scopes=["transcribe"])
    other = api.__class__()
    other.credentials(HTTP_X_API_KEY=other_secret)
    theirs = finished(other, tone_wav)

    monkeypatch.setattr("builtins.input", lambda prompt: "someone-else")
    with pytest.raises(CommandError, match="Not confirmed"):
        call_command("forget", "--owner", owner.name)
    assert Job.objects.filter(pk=done).exists()

    monkeypatch.setattr("builtins.input", lambda prompt: owner.name)
    call_command("forget", "--owner", owner.name, "--glossaries")

    assert not Job.objects.filter(pk__in=[done, queued]).exists()
    assert not Glossary.objects.filter(owner=owner).exists()
    assert Job.objects.get(pk=theirs).erased_at is None
    assert files_under(job_settings.MEDIA_ROOT / "results")  # theirs is still there


def test_forget_names_an_unknown_owner(db):
    with pytest.raises(CommandError, match="No owner is named 'nobody'"):
        call_command("forget", "--owner", "nobody", "--no-input")
