"""Operators' view: /metrics (Prometheus, multiprocess), /v1/system, JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from accounts.services import api_key_create
from scribe import metrics
from tests.conftest import REPO_ROOT
from transcription.models import Job


def client_with(scopes: list[str]) -> APIClient:
    _, secret = api_key_create(owner_name="ops", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            found[(sample.name, labels)] = sample.value
    return found


@pytest.fixture
def admin(db):
    return client_with(["admin"])


def test_metrics_need_an_admin_key(db, client):
    assert client.get("/metrics").status_code == 401
    assert client_with(["transcribe"]).get("/metrics").status_code == 403


def test_metrics_can_be_made_public_for_a_private_scraper(db, client, settings):
    settings.SCRIBE_METRICS_PUBLIC = True
    assert client.get("/metrics").status_code == 200


def test_metrics_count_jobs_by_status_and_the_queue_depth(admin, owner_key, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    owner = owner_key[0].owner
    for status in ("queued", "queued", "processing", "failed"):
        Job.objects.create(owner=owner, status=status)

    response = admin.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")

    assert response.status_code == 200
    found = samples(response.content)
    assert found[("scribe_jobs", (("status", "queued"),))] == 2
    assert found[("scribe_jobs", (("status", "processing"),))] == 1
    assert found[("scribe_jobs", (("status", "completed"),))] == 0
    assert found[("scribe_queue_depth", ())] == 2


def test_a_finished_job_is_timed_and_its_real_time_factor_recorded(admin, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    key = ("scribe_job_duration_seconds_count", (("status", "completed"),))
    before = samples(admin.get("/metrics").content)

    metrics.job_finished(
        status="completed",
        duration_s=12.0,
        metrics={"real_time_factor": 0.25, "audio_duration_s": 48.0},
    )

    after = samples(admin.get("/metrics").content)
    assert after[key] == before.get(key, 0) + 1
    rtf = ("scribe_job_real_time_factor_bucket", (("le", "0.3"),))
    assert after[rtf] == before.get(rtf, 0) + 1


WORKER = textwrap.dedent(
    """\
    import django, sys
    django.setup()
    from scribe import metrics
    metrics.streams_observed(sessions=3, lag_s=1.5)
    metrics.job_finished(status="failed", duration_s=4.0, metrics={})
    metrics.model_loaded(lane="realtime", model="tiny", device="cpu", compute_type="int8",
                         degraded=True)
    print("recorded", flush=True)
    sys.stdin.readline()
    """
)


def test_metrics_of_worker_processes_are_summed_and_dead_workers_streams_forgotten(
    admin, tmp_path, monkeypatch
):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "scribe.settings")
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "recorded"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))

        alive = samples(admin.get("/metrics").content)
        assert alive[("scribe_active_streams", ())] == 3
        assert alive[("scribe_stream_lag_seconds", ())] == 1.5
        assert alive[("scribe_degradations_total", (("lane", "realtime"),))] == 1
        assert alive[("scribe_job_duration_seconds_count", (("status", "failed"),))] == 1
    finally:
        worker.communicate("stop\n", timeout=30)

    gone = samples(admin.get("/metrics").content)
    assert gone.get(("scribe_active_streams", ()), 0) == 0  # a dead worker streams nothing
    assert gone[("scribe_job_duration_seconds_count", (("status", "failed"),))] == 1


def test_system_status_shows_hardware_plan_queue_and_which_model_is_missing(
    admin, job_settings, owner_key
):
    job_settings.SCRIBE_REALTIME_MODEL = "large-v3-turbo"
    Job.objects.create(owner=owner_key[0].owner, status="queued")

    body = admin.get("/v1/system").json()

    assert body["device"]["cpu_cores"] >= 1
    assert body["plan"]["total_workers"] >= 1
    assert body["plan"]["assignments"][0]["device"] == "cpu"
    assert body["queue"]["queued"] == 1
    lanes = {lane["lane"]: lane for lane in body["models"]["lanes"]}
    assert lanes["batch"]["problem"] is None
    assert "large-v3-turbo" in lanes["realtime"]["problem"]
    assert "batch_clusters" in body["workers"]


def test_system_status_needs_the_admin_scope(db):
    response = client_with(["transcribe"]).get("/v1/system")
    assert response.status_code == 403
    assert "admin" in response.json()["error"]["message"]


def test_json_logs_carry_the_job_and_session_they_are_about(tmp_path):
    code = textwrap.dedent(
        """\
        import logging
        from scribe.logs import log_context
        with log_context(job_id="job-1"):
            logging.getLogger("transcription.services").warning("job failed: %s", "bad")
        with log_context(session_id="s-9"):
            logging.getLogger("realtime.worker").warning("dropped audio")
        """
    )
    env = {
        **os.environ,
        "SCRIBE_LOG_FORMAT": "json",
        "SCRIBE_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(r["message"], r["job_id"], r["session_id"]) for r in records] == [
        ("job failed: bad", "job-1", None),
        ("dropped audio", None, "s-9"),
    ]
    assert records[0]["level"] == "WARNING" and records[0]["logger"] == "transcription.services"


def test_a_bad_log_format_is_refused_with_the_choices(tmp_path):
    env = {**os.environ, "SCRIBE_LOG_FORMAT": "xml"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SCRIBE_LOG_FORMAT" in result.stderr and "json" in result.stderr
