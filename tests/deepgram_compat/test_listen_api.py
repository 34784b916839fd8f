"""POST /v1/listen through Django's test client, with the real job service run in-process
by django-q2's sync mode (the SDK against daphne is tests/e2e/test_deepgram_sdk_e2e.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf

from deepgram_compat.prerecorded import Rendering, response
from tests.conftest import shared_clip
from tests.media import write_tone_wav
from transcription import erasure
from transcription.models import Job
from transcription.waiting import job_result
from webhooks.models import Delivery
from webhooks.services import webhook_secret_rotate

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/listen"


@pytest.fixture
def sync_jobs(job_settings, monkeypatch):
    """A queued job runs at once, in this process, as a worker would run it."""
    monkeypatch.setattr(Conf, "SYNC", True)
    job_settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    return job_settings


@pytest.fixture
def token(client, owner_key):
    """Deepgram's SDK sends ``Authorization: Token <key>``."""
    return {"HTTP_AUTHORIZATION": f"Token {owner_key[1]}"}


def listen(client, token, body: bytes, query: str = "", content_type="application/octet-stream"):
    return client.post(f"{URL}?{query}", data=body, content_type=content_type, **token)


def deepgram_error(answer) -> dict:
    body = answer.json()
    assert set(body) == {"err_code", "err_msg", "request_id"}, body
    return body


def test_the_audio_body_is_answered_in_deepgrams_shape(client, token, sync_jobs):
    audio = shared_clip("jfk.flac").read_bytes()
    answer = listen(
        client,
        token,
        audio,
        "model=nova-3&language=en-US&smart_format=true&utterances=true&numerals=true&x=1",
        content_type="audio/flac",
    )

    assert answer.status_code == 200, answer.content
    body = answer.json()
    job = Job.objects.get()
    assert body["metadata"]["request_id"] == answer["dg-request-id"] == str(job.id)
    assert job.options["model"] == "batch" and job.options["language"] == "en"
    assert body["metadata"]["duration"] == pytest.approx(11.0, abs=0.01)
    assert body["metadata"]["channels"] == 1
    ignored = [w["parameter"] for w in body["metadata"]["warnings"]]
    assert ignored == ["numerals", "x"]
    [channel] = body["results"]["channels"]
    [alternative] = channel["alternatives"]
    result = job_result(result_path=job.result_path)
    assert alternative["transcript"] == result["text"]
    assert alternative["words"] and "paragraphs" in alternative  # smart_format: paragraphs
    assert body["results"]["utterances"]
    assert body == response(
        result,
        request_id=str(job.id),
        created=job.created_at,
        rendering=Rendering.from_stored(job.options["deepgram"]),
    )


def test_keyterms_keywords_diarize_and_multichannel_reach_the_jobs_options(
    client, token, sync_jobs, tmp_path
):
    stereo = shared_clip("stereo_diarization.wav").read_bytes()
    query = "keyterm=vLLM&keyterm=Kubernetes&keywords=PyTorch:3&multichannel=true&diarize=true"
    answer = listen(client, token, stereo, query, content_type="audio/wav")

    assert answer.status_code == 200, answer.content
    options = Job.objects.get().options
    assert options["hotwords"] == ["vLLM", "Kubernetes", "PyTorch"]
    assert options["diarize"] == "channels"
    assert answer.json()["metadata"]["channels"] == len(answer.json()["results"]["channels"])


def test_a_json_url_body_is_a_400_saying_scribe_fetches_nothing(client, token, sync_jobs):
    answer = listen(client, token, b'{"url": "https://x/a.wav"}', content_type="application/json")

    assert answer.status_code == 400
    assert "fetches nothing" in deepgram_error(answer)["err_msg"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("language=tlh", "language"),
        ("punctuate=maybe", "use true or false"),
        ("callback=http://127.0.0.2:9/hook", "SCRIBE_WEBHOOK_ALLOWED_HOSTS"),
    ],
)
def test_bad_parameters_are_400s_in_deepgrams_shape(
    client, token, sync_jobs, tmp_path, query, says
):
    wav = write_tone_wav(tmp_path / "tone.wav", seconds=1).read_bytes()
    answer = listen(client, token, wav, query)

    assert answer.status_code == 400, answer.content
    assert says in deepgram_error(answer)["err_msg"]
    assert not Job.objects.exists()


def test_a_bad_key_an_empty_body_and_a_full_queue(client, token, sync_jobs, tmp_path):
    wav = write_tone_wav(tmp_path / "tone.wav", seconds=1).read_bytes()
    denied = listen(client, {"HTTP_AUTHORIZATION": "Token nope.nope"}, wav)
    assert denied.status_code == 401 and deepgram_error(denied)["err_code"]
    assert listen(client, token, b"").status_code == 400
    sync_jobs.SCRIBE_MAX_QUEUED_JOBS = 0
    full = listen(client, token, wav)
    assert full.status_code == 429 and deepgram_error(full)["err_code"] == "queue_full"


def test_a_job_not_done_within_the_wait_is_a_504_naming_it(client, token, job_settings, tmp_path):
    job_settings.SCRIBE_OPENAI_WAIT_S = 0  # and no worker: the job stays queued
    wav = write_tone_wav(tmp_path / "tone.wav", seconds=1).read_bytes()
    answer = listen(client, token, wav)

    assert answer.status_code == 504
    error = deepgram_error(answer)
    job = Job.objects.get()
    assert error["request_id"] == str(job.id) and f"/v1/jobs/{job.id}" in error["err_msg"]


def test_a_callback_is_answered_at_once_and_its_body_is_deepgrams_response_until_erased(
    client, token, owner_key, sync_jobs, tmp_path
):
    webhook_secret_rotate(owner=owner_key[0].owner)
    audio = shared_clip("jfk.flac").read_bytes()
    # Nothing listens on port 9: the delivery stays pending, its body as first rendered.
    answer = listen(client, token, audio, "callback=http://127.0.0.1:9/hook&paragraphs=true")

    assert answer.status_code == 200, answer.content
    job = Job.objects.get()
    assert answer.json() == {"request_id": str(job.id)}
    delivery = Delivery.objects.get(job=job)
    body = json.loads(delivery.body)
    text = job_result(result_path=job.result_path)["text"]
    assert body["results"]["channels"][0]["alternatives"][0]["transcript"] == text
    assert body["metadata"]["sha256"] in delivery.body

    client.delete(f"/v1/jobs/{job.id}", **token)

    erased = Delivery.objects.get(pk=delivery.pk).body
    assert json.loads(erased)["err_code"] == "job_erased"
    assert body["metadata"]["sha256"] not in erased
    assert body["metadata"]["sha256"] not in json.dumps(Job.objects.get().options)
    assert Job.objects.get().options["deepgram"]["paragraphs"] is True  # flags are kept
    assert text and text not in erased


def test_the_retention_purge_erases_a_deepgram_callback_body(
    client, token, owner_key, sync_jobs, tmp_path
):
    webhook_secret_rotate(owner=owner_key[0].owner)
    audio = shared_clip("jfk.flac").read_bytes()
    assert listen(client, token, audio, "callback=http://127.0.0.1:9/hook").status_code == 200
    delivery = Delivery.objects.get()
    assert "transcript" in delivery.body

    later = timezone.now() + timedelta(days=sync_jobs.SCRIBE_RETENTION_DAYS, hours=1)
    assert erasure.retention_purge(now=later) == (1, 0)

    body = json.loads(Delivery.objects.get(pk=delivery.pk).body)
    assert body["err_code"] == "job_erased" and "results" not in body
