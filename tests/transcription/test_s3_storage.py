"""Jobs on S3 (SCRIBE_STORAGE=s3), over real HTTP to a loopback S3 server (moto's).

The upload is sent to the bucket from its temporary file, the worker copies the source to
its own disk, the result is written to the bucket and streamed back through the web
process, and every end of a job — completed, failed, cancelled, worker lost, erased,
purged — leaves no object of it behind that it should not. Large files are measured with
tracemalloc: none may be held whole in the process's memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.utils import timezone

from tests.asgi import http_scope
from tests.conftest import REPO_ROOT, result_body
from transcription import erasure, recovery, runner, storage
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
LARGE_BYTES = 40 * MB
# What a process may allocate while moving a LARGE_BYTES file: a few parts in flight.
MEMORY_BOUND_BYTES = 16 * MB


def upload(api, path: Path, options: dict | None = None):
    with path.open("rb") as handle:
        response = api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps(options or {})}, format="multipart"
        )
    assert response.status_code == 202, response.json()
    return Job.objects.get(pk=response.json()["job_id"])


def write_large_file(path: Path, size: int = LARGE_BYTES) -> Path:
    with path.open("wb") as handle:
        for _ in range(size // MB):
            handle.write(os.urandom(MB))
    return path


def peak_allocated(fn):
    """Run ``fn``; return its result and the most memory Python had allocated meanwhile
    (every thread's: boto3 moves parts in threads of its own). This thread's connection to
    the bucket is made first: loading boto3's S3 model costs several MiB once."""
    default_storage.exists("warm-up")
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_job_on_s3_leaves_only_its_result_in_the_bucket_served_with_the_callers_key(
    api, s3_job_settings, s3_bucket, tone_wav
):
    job = upload(api, tone_wav, {"vad": False})  # segments of the random model's text
    assert job.source_path.startswith(f"sources/{job.id}/")
    assert s3_bucket.object_keys() == [job.source_path], "the upload is in the bucket"

    runner.job_process(job_id=str(job.id))

    job.refresh_from_db()
    assert job.status == "completed"
    assert s3_bucket.object_keys() == [f"results/{job.id}.json"], "no source is left"
    assert not storage.work_dir(job.id).exists(), "nor the worker's copy of it"
    response = api.get(f"/v1/jobs/{job.id}/result")
    assert response.status_code == 200 and response.streaming
    served = result_body(response)
    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=job.result_path)
    assert served == stored["Body"].read()
    assert int(response["Content-Length"]) == len(served)
    assert json.loads(served)["duration_s"] == pytest.approx(3.0, abs=0.01)
    srt = api.get(f"/v1/jobs/{job.id}/result?format=srt")
    assert srt.status_code == 200 and srt.content.startswith(b"1\n00:00:")


def test_a_job_failing_after_its_worker_copied_the_source_leaves_no_copy_and_no_object(
    api, s3_job_settings, s3_bucket, tone_wav, tmp_path
):
    s3_job_settings.SCRIBE_DIARIZATION = True
    s3_job_settings.SCRIBE_DIARIZATION_MODEL = str(tmp_path / "no-pipeline")  # fails to load
    job = upload(api, tone_wav, {"diarize": True})

    runner.job_process(job_id=str(job.id))

    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "diarization_unavailable")
    assert s3_bucket.object_keys() == []
    assert not storage.work_dir(job.id).exists()


def test_a_job_cancelled_while_it_runs_or_while_queued_leaves_no_object(
    api, s3_job_settings, s3_bucket, tone_wav
):
    running, queued = upload(api, tone_wav), upload(api, tone_wav)
    # Cancelled as the worker takes it: seen at the first segment boundary.
    Job.objects.filter(pk=running.pk).update(cancel_requested_at=timezone.now())

    runner.job_process(job_id=str(running.id))
    api.post(f"/v1/jobs/{queued.id}/cancel")

    assert {j.status for j in Job.objects.all()} == {"cancelled"}
    assert s3_bucket.object_keys() == []
    assert not storage.work_dir(running.id).exists()


def test_a_job_whose_worker_was_lost_for_good_leaves_no_object(
    api, s3_job_settings, s3_bucket, tone_wav
):
    job = upload(api, tone_wav)
    Job.objects.filter(pk=job.pk).update(attempts=s3_job_settings.SCRIBE_JOB_MAX_ATTEMPTS - 1)
    job.refresh_from_db()
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert job.mark_processing(host=s3_job_settings.SCRIBE_HOSTNAME, pid=process.pid)

    recovery.jobs_recover()

    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "worker_lost")
    assert s3_bucket.object_keys() == []


def test_erasure_the_purge_and_forget_delete_every_object_of_a_job(
    api, s3_job_settings, s3_bucket, tone_wav, owner_key
):
    erased, purged, forgotten = (upload(api, tone_wav) for _ in range(3))
    for job in (erased, purged, forgotten):
        runner.job_process(job_id=str(job.id))
    assert len(s3_bucket.object_keys("results/")) == 3

    assert api.delete(f"/v1/jobs/{erased.id}").status_code == 204
    assert s3_bucket.object_keys(f"results/{erased.id}") == []
    Job.objects.filter(pk=purged.pk).update(finished_at=timezone.now() - timedelta(days=8))
    Job.objects.filter(pk=forgotten.pk).update(finished_at=timezone.now())
    assert erasure.retention_purge() == (1, 0)
    assert s3_bucket.object_keys(f"results/{purged.id}") == []
    assert s3_bucket.object_keys() == [f"results/{forgotten.id}.json"]
    erasure.owner_forget(owner=owner_key[0].owner)
    assert s3_bucket.object_keys() == []


def test_an_upload_goes_to_the_bucket_in_parts_from_its_temporary_file(s3_job_settings, s3_bucket):
    upload_file = TemporaryUploadedFile("large.wav", "audio/wav", LARGE_BYTES, None)
    with upload_file:
        write_large_file(Path(upload_file.temporary_file_path()))

        name, peak = peak_allocated(
            lambda: storage.source_save(uuid.uuid4(), "large.wav", upload_file)
        )

    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key=name)
    assert head["ContentLength"] == LARGE_BYTES
    assert head["ETag"].strip('"').endswith("-5"), "a multipart upload of 8 MiB parts"
    assert peak < MEMORY_BOUND_BYTES, (
        f"{peak / MB:.0f} MiB allocated to send {LARGE_BYTES // MB} MiB"
    )


def test_a_worker_copies_a_large_source_to_its_disk_without_holding_it_in_memory(
    s3_job_settings, s3_bucket, tmp_path
):
    job_id = uuid.uuid4()
    name = f"sources/{job_id}/large.wav"
    s3_bucket.client().upload_file(
        str(write_large_file(tmp_path / "large.wav")), s3_bucket.name, name
    )

    def copy() -> int:
        with storage.source_local_path(name, job_id) as local:
            assert local.parent == storage.work_dir(job_id)
            return local.stat().st_size

    size, peak = peak_allocated(copy)

    assert size == LARGE_BYTES
    assert peak < MEMORY_BOUND_BYTES, (
        f"{peak / MB:.0f} MiB allocated to copy {LARGE_BYTES // MB} MiB"
    )
    storage.job_audio_delete(job_id, name)
    assert s3_bucket.object_keys() == [] and not storage.work_dir(job_id).exists()
    with pytest.raises(FileNotFoundError, match="No such object in the bucket"):
        default_storage.open(name)


def get_scope(path: str, key: str) -> dict:
    return http_scope(
        "GET", path, [(b"authorization", f"Bearer {key}".encode()), (b"host", b"testserver")]
    )


def serve(scope: dict) -> dict:
    """Send ``scope`` to scribe's ASGI application as daphne does; count what it sends
    back, keeping none of the body."""
    from scribe.asgi import application

    sent: dict = {"start": None, "bodies": 0, "bytes": 0}
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            sent["start"] = message
        else:
            sent["bodies"] += 1
            sent["bytes"] += len(message.get("body", b""))

    asyncio.run(application(scope, receive, send))
    return sent


def test_a_large_result_is_streamed_by_the_web_process_a_chunk_at_a_time(
    s3_job_settings, s3_bucket, owner_key, tmp_path
):
    jobs = {}
    for size in (MB, LARGE_BYTES):
        job = Job.objects.create(owner=owner_key[0].owner, status=Job.Status.COMPLETED)
        job.result_path = f"results/{job.id}.json"
        job.save(update_fields=["result_path"])
        result = write_large_file(tmp_path / f"{size}.json", size)
        s3_bucket.client().upload_file(str(result), s3_bucket.name, job.result_path)
        jobs[size] = job

    peaks, served = {}, {}
    for size, job in jobs.items():
        scope = get_scope(f"/v1/jobs/{job.id}/result", owner_key[1])
        served[size], peaks[size] = peak_allocated(lambda scope=scope: serve(scope))

    sent = served[LARGE_BYTES]
    assert sent["start"]["status"] == 200
    assert sent["bytes"] == LARGE_BYTES and sent["bodies"] > 100, "sent a chunk at a time"
    headers = {name.lower(): value for name, value in sent["start"]["headers"]}
    assert headers[b"content-length"] == str(LARGE_BYTES).encode()
    # What serving costs beyond the connections and threads it sets up: not the file.
    grew = peaks[LARGE_BYTES] - peaks[MB]
    assert grew < 4 * MB, f"{grew / MB:.0f} MiB more allocated to serve {LARGE_BYTES // MB} MiB"


def test_the_environment_configures_the_bucket_as_the_tests_use_it(s3_bucket):
    script = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.STORAGES['default']))"
    )
    environ = {**os.environ, **s3_bucket.environment()}
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert json.loads(output.strip().splitlines()[-1]) == s3_bucket.storage()
