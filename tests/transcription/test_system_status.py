"""/v1/system shows the realtime lane as its workers measured it, one entry per worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from realtime import worker as realtime_worker
from realtime.models import RealtimeWorker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin(db) -> APIClient:
    _, secret = api_key_create(owner_name="ops", scopes=["admin"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_each_realtime_worker_shows_its_model_measured_session_cap_and_batch_size(
    admin, job_settings, model_dir, monkeypatch, tmp_path
):
    job_settings.SCRIBE_REALTIME_MODEL = str(model_dir)
    job_settings.VAR_DIR = tmp_path
    monkeypatch.setattr(realtime_worker, "_capacity", None)  # this process starts afresh

    model, capacity = realtime_worker.warm_up()  # what a realtime worker does at start-up

    realtime = admin.get("/v1/system").json()["workers"]["realtime"]
    [worker] = realtime["workers"]
    assert (worker["host"], worker["pid"]) == (socket.gethostname(), os.getpid())
    assert (worker["model"], worker["device"]) == (model.name, "cpu")
    assert worker["measured_sessions"] == capacity.sessions
    assert worker["session_cap"] == realtime_worker.session_limit(capacity)
    assert worker["batch_size"] == capacity.max_batch(job_settings.SCRIBE_REALTIME_MAX_BATCH)
    assert realtime["channel"] == job_settings.SCRIBE_REALTIME_CHANNEL


def test_workers_that_stopped_reporting_or_died_on_this_host_are_dropped(admin, job_settings):
    old = timezone.now() - timedelta(seconds=job_settings.SCRIBE_STALE_AFTER_S + 5)
    setup = {
        "model": "tiny",
        "device": "cuda:0",
        "compute_type": "float16",
        "measured_sessions": 12,
        "session_cap": 8,
        "batch_size": 8,
    }
    RealtimeWorker.objects.create(host="gpu-2", pid=7, seen_at=timezone.now(), **setup)
    RealtimeWorker.objects.create(host="gpu-3", pid=7, seen_at=old, **setup)
    RealtimeWorker.objects.create(
        host=socket.gethostname(), pid=dead_pid(), seen_at=timezone.now(), **setup
    )

    workers = admin.get("/v1/system").json()["workers"]["realtime"]["workers"]

    assert [(w["host"], w["session_cap"], w["batch_size"]) for w in workers] == [("gpu-2", 8, 8)]
    assert list(RealtimeWorker.objects.values_list("host", flat=True)) == ["gpu-2"]


def test_the_schema_describes_the_realtime_workers_of_the_system_status(client, db):
    schema = client.get("/v1/schema?format=json").json()

    answer = schema["paths"]["/v1/system"]["get"]["responses"]["200"]["content"]
    body = answer["application/json"]["schema"]
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    realtime = body["properties"]["workers"]["properties"]["realtime"]
    worker = realtime["properties"]["workers"]["items"]
    if "$ref" in worker:
        worker = schema["components"]["schemas"][worker["$ref"].rsplit("/", 1)[1]]
    assert {"host", "pid", "model", "session_cap", "batch_size"} <= set(worker["properties"])
