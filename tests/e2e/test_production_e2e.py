"""Issue 17's acceptance: the production topology as real processes — daphne, qcluster and
the realtime runworker on PostgreSQL + Redis, files on the filesystem storage — serving
jobs over HTTP and a stream over WebSocket, visible in /metrics and /v1/system, and
stopping cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime.client import stream_file
from tests.conftest import require_service
from tests.e2e.stack import Stack
from tests.e2e.test_jobs_e2e import wait_for
from tests.media import write_tone_wav

pytestmark = pytest.mark.e2e


def scrape(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    found: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            found[(sample.name, labels)] = found.get((sample.name, labels), 0) + sample.value
    return found


def test_the_production_topology_serves_jobs_and_streams_reports_them_and_stops_cleanly(
    tmp_path, model_dir
):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    with Stack(
        tmp_path,
        model_dir,
        realtime_worker=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}",
        SCRIBE_WORKERS="1",
        SCRIBE_STORAGE="local",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as stack:
        stack.key = stack.manage(
            "create_api_key", "--owner", "ops", "--scopes", "transcribe", "stream", "admin"
        ).strip()
        with stack.client() as client:
            wait_for(lambda: client.get("/health/ready").status_code == 200, 120, "/health/ready")
            # Files over HTTP, through the queue to the batch worker.
            audio = write_tone_wav(tmp_path / "tone.wav", seconds=6.0)
            jobs = []
            for _ in range(2):
                with audio.open("rb") as handle:
                    response = client.post(
                        "/v1/jobs",
                        files={"file": ("tone.wav", handle)},
                        data={"options": json.dumps({"vad": False})},
                    )
                assert response.status_code == 202, response.text
                jobs.append(response.json()["job_id"])
            for job in jobs:
                wait_for(
                    lambda job=job: (
                        client.get(f"/v1/jobs/{job}").json()["status"] in ("completed", "failed")
                    ),
                    180,
                    f"job {job}",
                )
                assert client.get(f"/v1/jobs/{job}").json()["status"] == "completed"
                result = client.get(f"/v1/jobs/{job}/result?format=json").json()
                assert result["duration_s"] == pytest.approx(6.0, abs=0.1)

            # A live stream through the realtime worker, watched from /metrics meanwhile.
            most_streams = []
            streaming = threading.Event()

            def watch() -> None:
                with stack.client() as watcher:
                    while not streaming.is_set():
                        most_streams.append(scrape(watcher).get(("scribe_active_streams", ()), 0))
                        time.sleep(0.5)

            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                run = asyncio.run(
                    stream_file(
                        f"ws://127.0.0.1:{stack.port}/v1/stream",
                        stack.key,
                        write_tone_wav(tmp_path / "live.wav", seconds=8.0, rate=16000),
                        speed=1.0,
                    )
                )
            finally:
                streaming.set()
                watcher.join()
            kinds = [e["type"] for e in run.events]
            assert kinds[0] == "ready" and kinds[-1] == "closed", kinds
            assert run.close_code == 1000
            stream_job = run.events[-1]["job_id"]
            assert client.get(f"/v1/jobs/{stream_job}/result?format=json").status_code == 200
            assert max(most_streams) == 1

            # Metrics: from the database, and summed over the worker processes' files.
            after = wait_for(
                lambda: (m := scrape(client)).get(("scribe_active_streams", ()), 0) == 0 and m,
                10,
                "the stream to end in /metrics",
            )
            assert after[("scribe_jobs", (("status", "completed"),))] == 3
            assert after[("scribe_queue_depth", ())] == 0
            assert after[("scribe_job_duration_seconds_count", (("status", "completed"),))] == 2
            assert after[("scribe_job_real_time_factor_count", ())] == 2
            lanes = {labels for name, labels in after if name == "scribe_model_loaded"}
            assert {dict(labels)["lane"] for labels in lanes} == {"batch", "realtime"}

            system = client.get("/v1/system").json()
            assert {m["lane"] for m in system["models"]["loaded"]} == {"batch", "realtime"}
            assert all(lane["problem"] is None for lane in system["models"]["lanes"])
            assert system["queue"]["queued"] == 0

        # Clean shutdown: SIGTERM to each process, which stops its own; nothing left behind.
        for process in stack.processes:
            os.kill(process.pid, signal.SIGTERM)
        for process in stack.processes:
            assert process.wait(timeout=30) in (0, -signal.SIGTERM), process.args
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 0)
                pytest.fail(f"{process.args} left processes behind")
