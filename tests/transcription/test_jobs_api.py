from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts.services import api_key_create
from tests.conftest import result_json, shared_clip
from tests.media import write_mp4, write_tone_wav, write_wav
from transcription import erasure, runner
from transcription.engine.audio import decode_all
from transcription.models import Job, JobEvent

pytestmark = pytest.mark.django_db(transaction=True)


def upload(api, path: Path, options: dict | None = None, **extra):
    with path.open("rb") as handle:
        data = {"file": handle}
        if options is not None:
            data["options"] = json.dumps(options)
        return api.post("/v1/jobs", data, format="multipart", **extra)


def run_worker(job_id: str) -> None:
    """Do what a django-q2 worker does with the task (the real qcluster is in e2e tests)."""
    runner.job_process(job_id=job_id)


def worker_started(job_id: str) -> threading.Thread:
    """A worker running the job in a thread, returned once it has made progress."""
    worker = threading.Thread(target=run_worker, args=(job_id,))
    worker.start()
    deadline = time.monotonic() + 60
    while Job.objects.get(pk=job_id).processed_s == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return worker


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def speech(tmp_path) -> Path:
    return shared_clip("jfk.flac")


def test_a_job_goes_from_upload_to_every_result_format(api, job_settings, speech):
    created = upload(api, speech, {"language": "en", "word_timestamps": True})

    assert created.status_code == 202, created.json()
    body = created.json()
    assert body["status"] == "queued" and body["queue_position"] == 1 and body["jobs_ahead"] == 0
    run_worker(body["job_id"])
    done = api.get(f"/v1/jobs/{body['job_id']}").json()
    assert done["status"] == "completed"
    assert done["summary"]["duration_sec"] == pytest.approx(11.0, abs=0.01)
    assert set(done["results"]) == {"json", "txt", "srt", "vtt"}

    result = api.get(f"/v1/jobs/{body['job_id']}/result?format=json")
    assert result["Content-Type"] == "application/json"
    assert result["Content-Disposition"] == 'attachment; filename="jfk.json"'
    data = result_json(result)
    assert data["segments"] and "words" in data["segments"][0]
    assert data["run"]["model_checksum"].startswith("sha256:")
    srt = api.get(f"/v1/jobs/{body['job_id']}/result?format=srt")
    assert srt["Content-Type"].startswith("application/x-subrip")
    assert srt.content.decode().startswith("1\n00:00:")
    vtt = api.get(f"/v1/jobs/{body['job_id']}/result?format=vtt")
    assert vtt["Content-Type"].startswith("text/vtt") and vtt.content.startswith(b"WEBVTT")
    txt = api.get(f"/v1/jobs/{body['job_id']}/result?format=txt")
    assert txt["Content-Type"].startswith("text/plain")
    assert txt.content.decode().strip() == "\n".join(
        s["text"].strip() for s in data["segments"] if s["text"].strip()
    )
    # The source audio is gone; only the result is kept.
    assert [p.name for p in files_under(job_settings.MEDIA_ROOT)] == [f"{body['job_id']}.json"]


def test_progress_is_written_while_a_job_runs_and_reads_as_percent_and_eta(
    api, job_settings, tmp_path
):
    long_tone = write_tone_wav(tmp_path / "tone.wav", seconds=400)
    job_id = upload(api, long_tone, {"vad": False}).json()["job_id"]
    seen: list[dict] = []
    worker = threading.Thread(target=run_worker, args=(job_id,))
    worker.start()
    while worker.is_alive():
        body = api.get(f"/v1/jobs/{job_id}").json()
        if body["status"] == "processing" and body["processed_sec"] > 0:
            seen.append(body)
        time.sleep(0.2)
    worker.join()

    assert seen, "progress was visible while processing"
    first = seen[0]
    assert first["total_sec"] == pytest.approx(400, abs=0.5)
    assert 0 < first["progress"] < 100
    assert first["progress"] == pytest.approx(100 * first["processed_sec"] / 400, abs=0.1)
    assert first["eta_sec"] is not None and first["eta_sec"] > 0
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"


def test_a_processing_job_cancels_at_the_next_segment_and_leaves_no_audio(
    api, job_settings, tmp_path
):
    long_tone = write_tone_wav(tmp_path / "tone.wav", seconds=900)
    job_id = upload(api, long_tone, {"vad": False}).json()["job_id"]
    worker = worker_started(job_id)

    cancelled = api.post(f"/v1/jobs/{job_id}/cancel")
    worker.join()

    assert cancelled.status_code == 200
    assert cancelled.json()["cancel_requested"] is True
    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled"
    assert job.processed_s < 900
    assert job.source_path == ""
    assert files_under(job_settings.MEDIA_ROOT) == []
    assert api.get(f"/v1/jobs/{job_id}/result").status_code == 409


def test_a_queued_job_cancels_at_once(api, job_settings, tone_wav):
    job_id = upload(api, tone_wav).json()["job_id"]

    body = api.post(f"/v1/jobs/{job_id}/cancel").json()

    assert body["status"] == "cancelled"
    assert files_under(job_settings.MEDIA_ROOT) == []
    run_worker(job_id)  # the task still in the broker finds nothing to do
    assert Job.objects.get(pk=job_id).status == "cancelled"


def test_queue_position_counts_the_jobs_ahead_and_uploads_are_taken_while_one_runs(
    api, job_settings, tmp_path
):
    long_tone = write_tone_wav(tmp_path / "tone.wav", seconds=400)
    first = upload(api, long_tone, {"vad": False}).json()["job_id"]
    worker = threading.Thread(target=run_worker, args=(first,))
    worker.start()
    while Job.objects.get(pk=first).status != "processing":
        time.sleep(0.05)

    later = [upload(api, long_tone, {"vad": False}) for _ in range(3)]
    positions = [api.get(f"/v1/jobs/{r.json()['job_id']}").json() for r in later]
    worker.join()

    assert [r.status_code for r in later] == [202, 202, 202]
    assert [(p["queue_position"], p["jobs_ahead"]) for p in positions] == [(1, 0), (2, 1), (3, 2)]


def test_an_mp4_with_sound_is_transcribed(api, job_settings, tmp_path):
    video = write_mp4(tmp_path / "talk.mp4", audio=decode_all(shared_clip("jfk.flac")))

    job_id = upload(api, video).json()["job_id"]
    run_worker(job_id)

    body = api.get(f"/v1/jobs/{job_id}").json()
    assert body["status"] == "completed"
    assert body["source"]["format"].startswith("mov,mp4")


def test_an_mp4_without_sound_is_refused_with_415(api, job_settings, tmp_path):
    response = upload(api, write_mp4(tmp_path / "silent.mp4", audio=None))

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "no_audio_stream"
    assert Job.objects.count() == 0
    assert files_under(job_settings.MEDIA_ROOT) == []


def test_a_file_that_is_not_media_is_refused_with_415(api, job_settings, tmp_path):
    notes = tmp_path / "notes.mp3"
    notes.write_text("meeting notes, not audio")

    response = upload(api, notes)

    assert response.status_code == 415
    message = response.json()["error"]["message"]
    assert "not an audio or video file" in message
    assert message.startswith("Cannot read notes.mp3:"), "the caller's name, not the temp file"


def test_an_upload_over_the_size_limit_is_refused_with_413(api, job_settings, tmp_path):
    job_settings.SCRIBE_MAX_UPLOAD_MB = 1
    big = write_wav(tmp_path / "big.wav", np.zeros(16000 * 40))  # 1.3 MB

    response = upload(api, big)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    assert Job.objects.count() == 0


def test_audio_over_the_duration_limit_is_refused_with_413(api, job_settings, tmp_path):
    job_settings.SCRIBE_MAX_DURATION_S = 60
    response = upload(api, write_wav(tmp_path / "two-min.wav", np.zeros(16000 * 120)))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "duration_too_long"
    assert "2.0 minutes" in response.json()["error"]["message"]


def test_a_duration_limit_under_a_minute_is_said_in_seconds(api, job_settings, tmp_path):
    job_settings.SCRIBE_MAX_DURATION_S = 30
    response = upload(api, write_wav(tmp_path / "long.wav", np.zeros(16000 * 45)))

    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert "The audio is 45 seconds long" in message
    assert "at most 30 seconds" in message


def test_the_result_of_a_cancelled_job_says_there_will_be_none(api, job_settings, tone_wav):
    job_id = upload(api, tone_wav).json()["job_id"]
    api.post(f"/v1/jobs/{job_id}/cancel")

    response = api.get(f"/v1/jobs/{job_id}/result")

    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "was cancelled and will have no result" in message
    assert "Poll" not in message


def test_hardware_is_the_operators_unless_requests_are_allowed_to_choose(
    api, job_settings, tone_wav
):
    response = upload(api, tone_wav, {"device": "cpu", "compute_type": "int8", "model": "x"})

    assert response.status_code == 400
    fields = response.json()["error"]["fields"]["options"]
    assert set(fields) == {"device", "compute_type", "model"}
    assert "SCRIBE_ALLOW_REQUEST_HARDWARE" in fields["device"][0]
    assert "not served here" in fields["model"][0]
    job_settings.SCRIBE_ALLOW_REQUEST_HARDWARE = True
    assert upload(api, tone_wav, {"device": "cpu", "compute_type": "int8"}).status_code == 202


def test_a_gpu_job_on_workers_without_one_fails_in_the_apis_words(api, job_settings, tone_wav):
    job_settings.SCRIBE_ALLOW_REQUEST_HARDWARE = True
    # Accepted: the web process (no model, often no GPU) cannot know the workers' hardware.
    job_id = upload(api, tone_wav, {"device": "cuda"}).json()["job_id"]
    # The hardware edge: what CTranslate2 reports on a worker without a CUDA device.
    with mock.patch("ctranslate2.get_cuda_device_count", autospec=True, return_value=0):
        run_worker(job_id)

    body = api.get(f"/v1/jobs/{job_id}").json()
    assert body["status"] == "failed"
    message = body["error"]["message"]
    assert "no such CUDA device" in message and '"auto"' in message
    assert "--device" not in message, "API wording, not the command line's"
    assert files_under(job_settings.MEDIA_ROOT) == []


def test_a_full_queue_answers_429_with_retry_after(api, job_settings, tone_wav):
    job_settings.SCRIBE_MAX_QUEUED_JOBS = 2
    assert [upload(api, tone_wav).status_code for _ in range(2)] == [202, 202]

    response = upload(api, tone_wav)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 10
    assert response.json()["error"]["code"] == "queue_full"


def test_bad_options_get_field_errors(api, job_settings, tone_wav):
    response = upload(
        api, tone_wav, {"language": "klingon", "batch_size": 0, "formats": ["docx"], "speed": 2}
    )

    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid"
    fields = body["fields"]["options"]
    assert set(fields) == {"speed"}  # unknown options are refused before the rest
    response = upload(api, tone_wav, {"language": "klingon", "batch_size": 0, "formats": ["docx"]})
    fields = response.json()["error"]["fields"]["options"]
    assert set(fields) == {"language", "batch_size", "formats"}
    assert "not a language Whisper knows" in fields["language"][0]


def test_options_that_are_not_json_and_a_missing_file_are_field_errors(api, job_settings, tone_wav):
    with tone_wav.open("rb") as handle:
        response = api.post("/v1/jobs", {"file": handle, "options": "{lang"}, format="multipart")
    assert response.json()["error"]["fields"]["options"][0].startswith("Not valid JSON")
    response = api.post("/v1/jobs", {"options": "{}"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]


def test_a_failed_job_says_why(api, job_settings, tone_wav, model_dir):
    job_id = upload(api, tone_wav).json()["job_id"]
    job_settings.SCRIBE_BATCH_MODEL = "large-v3"  # not on disk, offline

    run_worker(job_id)

    body = api.get(f"/v1/jobs/{job_id}").json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "model_not_found"
    assert "'large-v3' is not available" in body["error"]["message"]
    assert files_under(job_settings.MEDIA_ROOT) == []


def test_the_list_shows_only_the_callers_jobs_filtered_by_status(api, job_settings, tone_wav):
    mine = [upload(api, tone_wav).json()["job_id"] for _ in range(2)]
    api.delete(f"/v1/jobs/{mine[0]}")
    _, other_secret = api_key_create(owner_name="other-team", scopes=["transcribe"])
    other = api.__class__()
    other.credentials(HTTP_X_API_KEY=other_secret)
    theirs = upload(other, tone_wav).json()["job_id"]

    listed = api.get("/v1/jobs").json()
    queued = api.get("/v1/jobs?status=queued").json()

    assert {j["job_id"] for j in listed["results"]} == set(mine)
    assert [j["job_id"] for j in queued["results"]] == [mine[1]]
    assert api.get(f"/v1/jobs/{theirs}").status_code == 404
    assert api.post(f"/v1/jobs/{theirs}/cancel").status_code == 404
    assert api.get("/v1/jobs?status=lost").status_code == 400


def test_a_request_without_a_key_gets_401_in_the_error_shape(job_settings, db):
    from rest_framework.test import APIClient

    response = APIClient().get("/v1/jobs")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_health_is_live_and_ready_only_with_the_models_on_disk(client, job_settings):
    assert client.get("/health/live").json() == {"status": "ok"}
    job_settings.SCRIBE_REALTIME_MODEL = str(job_settings.SCRIBE_BATCH_MODEL)
    assert client.get("/health/ready").status_code == 200
    job_settings.SCRIBE_REALTIME_MODEL = "large-v3-turbo"
    not_ready = client.get("/health/ready")
    assert not_ready.status_code == 503
    assert "realtime model" in not_ready.json()["problems"][0]


def test_health_needs_only_the_models_of_the_lanes_this_host_serves(client, job_settings):
    job_settings.SCRIBE_REALTIME_MODEL = "large-v3-turbo"  # not on disk
    job_settings.SCRIBE_LANES = ["batch"]
    assert client.get("/health/ready").status_code == 200

    job_settings.SCRIBE_LANES = ["batch", "realtime"]
    assert client.get("/health/ready").status_code == 503


def test_the_openapi_schema_and_docs_are_served(client, db):
    schema = client.get("/v1/schema?format=json")
    assert schema.status_code == 200
    assert "/v1/jobs/{job_id}/result" in schema.json()["paths"]
    assert client.get("/v1/docs").status_code == 200


def test_retention_purges_only_terminal_jobs_past_the_period(api, job_settings, tone_wav, speech):
    done = upload(api, speech).json()["job_id"]
    run_worker(done)
    waiting = upload(api, tone_wav).json()["job_id"]
    result_path = Job.objects.get(pk=done).result_path
    later = timezone.now() + timezone.timedelta(days=7, hours=1)

    assert erasure.retention_purge(now=timezone.now() + timezone.timedelta(days=6)) == (0, 0)
    assert erasure.retention_purge(now=later) == (1, 0)

    assert not default_storage.exists(result_path)
    assert api.get(f"/v1/jobs/{done}/result").status_code == 410
    assert api.get(f"/v1/jobs/{done}").json()["results"] is None
    queued = Job.objects.get(pk=waiting)
    assert queued.status == "queued" and queued.source_path
    assert default_storage.exists(queued.source_path)


def test_retention_deletes_the_job_events_handled_before_the_period(owner_key):
    handled, waiting = (
        Job.objects.create(owner=owner_key[0].owner, status="processing") for _ in range(2)
    )
    assert handled.mark_cancelled() and waiting.mark_cancelled()
    JobEvent.objects.filter(job=handled).update(handled_at=timezone.now())
    later = timezone.now() + timezone.timedelta(days=7, hours=1)

    erasure.retention_purge(now=later)

    assert list(JobEvent.objects.values_list("job_id", flat=True)) == [waiting.pk]
