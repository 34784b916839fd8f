"""A model given as a local directory is named to callers, never shown as a server path:
the job's summary, its result, its callback body and /v1/models carry the served name;
the run record (the admin's) keeps the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.conftest import result_body, result_json
from tests.media import write_tone_wav
from transcription import runner
from transcription.engine import model_served_name
from transcription.models import Job
from transcription.representation import job_representation

pytestmark = pytest.mark.django_db(transaction=True)


def upload(api, path: Path, options: dict) -> str:
    with path.open("rb") as handle:
        response = api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps(options)}, format="multipart"
        )
    assert response.status_code == 202, response.json()
    return response.json()["job_id"]


def test_the_bundled_tiny_en_directory_is_served_as_tiny_en(real_model_dir):
    assert model_served_name(str(real_model_dir)) == "tiny.en"


def test_a_directory_is_named_by_its_own_name_and_a_hub_name_is_kept(model_dir, tmp_path):
    copy = tmp_path / "whisper-small-ct2"
    copy.symlink_to(model_dir, target_is_directory=True)

    assert model_served_name(str(model_dir)) == model_dir.name == "micro"
    assert model_served_name(str(copy)) == "micro"  # the directory it is, not the link
    assert model_served_name("large-v3") == "large-v3"
    assert model_served_name("Systran/faster-whisper-small") == "Systran/faster-whisper-small"


def test_a_finished_job_shows_callers_the_model_name_and_the_admin_its_path(
    api, job_settings, tmp_path, client
):
    path = str(job_settings.SCRIBE_BATCH_MODEL)  # the random-weight model's directory
    job_id = upload(api, write_tone_wav(tmp_path / "tone.wav", seconds=2.0), {"vad": False})

    runner.job_process(job_id=job_id)

    summary = api.get(f"/v1/jobs/{job_id}")
    result = api.get(f"/v1/jobs/{job_id}/result?format=json")
    job = Job.objects.get(pk=job_id)
    callback = json.dumps(job_representation(job, base_url="https://scribe.example/"), default=str)
    assert summary.json()["status"] == "completed"
    assert summary.json()["summary"]["model"] == "micro"
    assert result_json(result)["run"]["model_name"] == "micro"
    for served in (summary.content.decode(), result_body(result).decode(), callback):
        assert path not in served and str(Path(path).resolve()) not in served
    # The run record keeps where the model is, for operators.
    assert job.run["model_path"] == str(Path(path).resolve())
    User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client.login(username="operator", password="pw-for-tests-only")
    assert (
        str(Path(path).resolve())
        in client.get(f"/admin/transcription/job/{job_id}/change/").content.decode()
    )


def test_a_job_recorded_with_the_path_as_its_model_name_is_shown_with_the_name(
    owner_key, job_settings
):
    key, _ = owner_key
    path = str(job_settings.SCRIBE_BATCH_MODEL)
    job = Job.objects.create(
        owner=key.owner,
        status=Job.Status.PROCESSING,
        source_name="a.wav",
        started_at=timezone.now(),
    )
    job.mark_completed(
        result_path=f"{job.id}.json", language="en", run={"model_name": path}, metrics={}
    )

    shown = job_representation(Job.objects.get(pk=job.pk), base_url="https://scribe.example/")

    assert shown["summary"]["model"] == "micro"


def test_requests_name_the_served_model_which_runs_the_configured_directory(
    api, job_settings, tmp_path
):
    path = str(job_settings.SCRIBE_BATCH_MODEL)
    job_settings.SCRIBE_REALTIME_MODEL = "large-v3-turbo"

    models = api.get("/v1/models").content.decode()
    by_path = api.post(
        "/v1/jobs",
        {
            "file": write_tone_wav(tmp_path / "a.wav", seconds=1.0).open("rb"),
            "options": json.dumps({"model": path}),
        },
        format="multipart",
    )
    job_id = upload(
        api, write_tone_wav(tmp_path / "b.wav", seconds=2.0), {"model": "micro", "vad": False}
    )
    runner.job_process(job_id=job_id)

    assert '"micro"' in models and path not in models
    # The path is the operator's: a request naming it is refused, pointed at the name.
    assert by_path.status_code == 400
    assert "use one of batch, large-v3-turbo, micro, realtime" in by_path.content.decode()
    assert Job.objects.get(pk=job_id).status == Job.Status.COMPLETED
    assert api.get(f"/v1/jobs/{job_id}").json()["summary"]["model"] == "micro"
