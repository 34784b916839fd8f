"""Batch workers killed mid-job on PostgreSQL + Redis: nothing lost, nothing run twice.

The twenty-kill trial is benchmarks/worker_kill_trial.py; here a few kills, and the race
of several recoveries over the same dead worker's jobs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import require_service
from tests.e2e.kill_trial import run_kill_trial
from tests.e2e.stack import Stack, redis_url

pytestmark = pytest.mark.e2e


@pytest.fixture
def services_up():
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")


def test_workers_killed_mid_job_lose_no_job_and_leave_no_audio(services_up, tmp_path, model_dir):
    with Stack(
        tmp_path,
        model_dir,
        SCRIBE_WORKERS="2",
        SCRIBE_JOB_MAX_ATTEMPTS="10",
        REDIS_URL=redis_url(),
    ) as stack:
        result = run_kill_trial(stack, tmp_path, jobs=3, kills=4, audio_s=240, timeout_s=300)

    assert result.clean, result.summary()


MAKE_DEAD_JOBS = textwrap.dedent(
    """
    import socket, subprocess, sys
    from django.core.files.base import ContentFile
    from transcription import storage
    from transcription.models import Job
    from accounts.models import Owner

    process = subprocess.Popen([sys.executable, "-c", "pass"]); process.wait()
    owner = Owner.objects.create(name="race")
    for _ in range(40):
        job = Job.objects.create(owner=owner, source_name="a.wav")
        job.source_path = storage.source_save(job.id, "a.wav", ContentFile(b"RIFF", "a.wav"))
        job.save()
        job.mark_processing(host=socket.gethostname(), pid=process.pid)
    """
)


def test_concurrent_recoveries_of_a_dead_workers_jobs_keep_every_source(
    services_up, tmp_path, model_dir
):
    with Stack(tmp_path, model_dir, batch_workers=False, REDIS_URL=redis_url()) as stack:
        stack.manage("shell", "-c", MAKE_DEAD_JOBS)
        recoveries = [
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from transcription.recovery import jobs_recover; jobs_recover()",
                ],
                cwd=stack.root,
                env=stack.env,
            )
            for _ in range(6)
        ]
        assert [process.wait(timeout=120) for process in recoveries] == [0] * 6
        rows = stack.sql("SELECT status, source_path FROM transcription_job")

    assert len(rows) == 40
    assert {status for status, _ in rows} == {"queued"}
    lost = [path for _, path in rows if not path or not (stack.media / path).is_file()]
    assert lost == [], f"{len(lost)} of 40 requeued jobs lost their source audio"
