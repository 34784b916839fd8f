"""`manage.py serve` on a fresh data directory: the embedded defaults as one process group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from realtime.consumers import FRAME_TOO_LARGE_CLOSE
from tests.conftest import REPO_ROOT
from tests.e2e.stack import free_port
from tests.media import write_tone_wav
from tests.realtime.test_frame_limit import send_frame

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            value = predicate()
            if value:
                return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def fresh_env(data: Path, model_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "SCRIBE_SQLITE_PATH": str(data / "db.sqlite3"),
        "SCRIBE_MEDIA_ROOT": str(data / "media"),
        "SCRIBE_MODELS_DIR": str(data / "models"),
        "SCRIBE_BATCH_MODEL": str(model_dir),
        "SCRIBE_REALTIME_MODEL": str(model_dir),
        "SCRIBE_DEVICE": "cpu",
        "SCRIBE_CPU_THREADS": "1",
        "SCRIBE_WORKERS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


def start(env: dict[str, str], port: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@contextlib.contextmanager
def killed_at_exit(serve: subprocess.Popen):
    try:
        yield serve
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(timeout=10)


def test_serve_on_a_fresh_machine_prints_a_key_runs_a_job_and_stops_everything(tmp_path, model_dir):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with killed_at_exit(start(fresh_env(tmp_path / "data", model_dir), port)) as serve:
        assert serve.stdout is not None
        assert "created the first API key" in serve.stdout.readline()
        key = serve.stdout.readline().strip()
        headers = {"Authorization": f"Bearer {key}"}
        wait_for(lambda: httpx.get(f"{base}/health/ready").status_code == 200, 120, "ready")

        audio = write_tone_wav(tmp_path / "tone.wav", seconds=5.0)
        with audio.open("rb") as handle:
            response = httpx.post(
                f"{base}/v1/jobs",
                headers=headers,
                files={"file": ("tone.wav", handle)},
                data={"options": json.dumps({"vad": False})},
            )
        assert response.status_code == 202, response.text
        job = response.json()["job_id"]
        status = wait_for(
            lambda: (
                (s := httpx.get(f"{base}/v1/jobs/{job}", headers=headers).json()["status"])
                in ("completed", "failed")
                and s
            ),
            180,
            "the job to finish",
        )
        assert status == "completed"
        result = httpx.get(f"{base}/v1/jobs/{job}/result?format=json", headers=headers)
        assert result.json()["duration_s"] == pytest.approx(5.0, abs=0.1)
        # The batch worker's metrics reach the web process's /metrics (the group's dir).
        metrics = httpx.get(f"{base}/metrics", headers=headers).text
        assert 'scribe_job_duration_seconds_count{status="completed"} 1.0' in metrics

        children = psutil.Process(serve.pid).children(recursive=True)
        assert len(children) >= 3  # daphne, qcluster and its worker processes
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []

    # A second start on the same data: no new key is printed.
    with killed_at_exit(
        start(fresh_env(tmp_path / "data", model_dir), port, "--no-workers")
    ) as again:
        wait_for(lambda: httpx.get(f"{base}/health/live").status_code == 200, 120, "live")
        again.send_signal(signal.SIGINT)
        out, _ = again.communicate(timeout=60)
        assert again.returncode == 0
        assert "API key" not in out


def test_when_one_process_dies_serve_says_which_and_stops_the_others(tmp_path, model_dir):
    port = free_port()
    with killed_at_exit(start(fresh_env(tmp_path / "data", model_dir), port)) as serve:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200,
            120,
            "live",
        )
        children = psutil.Process(serve.pid).children()
        web = next(c for c in children if "daphne" in " ".join(c.cmdline()))
        everything = psutil.Process(serve.pid).children(recursive=True)
        web.kill()

        _, err = serve.communicate(timeout=60)

        assert serve.returncode == 1
        assert "the web process killed by SIGKILL; stopping the others" in err
        _, alive = psutil.wait_procs(everything, timeout=5)
        assert alive == []


def test_an_oversized_frame_to_serves_web_process_gets_scribes_answer(tmp_path, model_dir):
    """daphne as `serve` starts it lets the frame through to scribe, which says the limit."""
    port = free_port()
    env = fresh_env(tmp_path / "data", model_dir)
    with killed_at_exit(start(env, port, "--no-workers")) as serve:
        assert serve.stdout is not None
        assert "created the first API key" in serve.stdout.readline()
        key = serve.stdout.readline().strip()
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200,
            120,
            "live",
        )

        events, code = asyncio.run(
            send_frame(f"ws://127.0.0.1:{port}/v1/stream", key, bytes(10 * 1000 * 1000))
        )

    assert code == FRAME_TOO_LARGE_CLOSE
    assert [e["code"] for e in events if e["type"] == "error"] == ["frame_too_large"]
