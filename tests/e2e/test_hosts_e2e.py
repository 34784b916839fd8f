"""Hosts that share nothing but the services (docs/scaling.md), on real processes.

daphne on host A and a ``qcluster`` on each of hosts B and C: each with its own host name,
media root and temporary directory, none able to see another's (tests/e2e/stack.py
``Host``), sharing PostgreSQL, Redis and an S3 bucket on loopback. Jobs flow across both
workers; a worker host killed mid-job has its job completed by the other within the
documented budget; no file of a job is left on any host, no source in the bucket, and no
object at all once the jobs are erased or purged.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import IN_CI, require_service
from tests.e2e.stack import Host, Stack, hiding, redis_url
from tests.e2e.test_jobs_e2e import submit, wait_for
from tests.media import write_tone_wav

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)

WEB, WORKERS = "host-a", ("host-b", "host-c")
JOBS = 20
STALE_AFTER_S = 10
# A lost worker's job is retried once its heartbeat is STALE_AFTER_S old and the minute
# schedule runs recovery, which django-q2's scheduler looks for every 30 s.
RECOVERY_BUDGET_S = STALE_AFTER_S + 60 + 30
PURGE = (
    "from datetime import timedelta; from django.utils import timezone; "
    "from transcription.erasure import retention_purge; "
    "print(retention_purge(now=timezone.now() + timedelta(days=8)))"
)


def needs_root() -> None:
    """Private mount namespaces (``hiding``) need root; CI runs as root."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the simulated hosts need root (mount namespaces)")
        pytest.skip("the simulated hosts need root (mount namespaces)")


@pytest.fixture
def stack(tmp_path, model_dir, s3_bucket):
    needs_root()
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    with Stack(
        tmp_path,
        model_dir,
        hosts=(WEB, *WORKERS),
        REDIS_URL=redis_url(),
        SCRIBE_WORKERS="1",
        SCRIBE_STALE_AFTER_S=str(STALE_AFTER_S),
        SCRIBE_LOG_LEVEL="INFO",  # django-q2 says when a worker is ready for work
        **s3_bucket.environment(),
    ) as running:
        yield running


def files_left(stack: Stack) -> dict[str, list[str]]:
    return {name: [str(p) for p in host.files()] for name, host in stack.hosts.items()}


def job_row(stack: Stack, job_id: str) -> tuple[str, str, float]:
    [row] = stack.sql(
        "SELECT status, worker_host, processed_s FROM transcription_job WHERE id = %s", job_id
    )
    return row


def test_a_host_sees_none_of_another_hosts_files(tmp_path):
    needs_root()
    b, c = (Host(name, tmp_path / name).create() for name in WORKERS)
    secret = b.media / "only-on-b"
    secret.write_text("b")

    def on_c(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(hiding(command, [b.root]), capture_output=True, text=True)

    seen, written = on_c("cat", str(secret)), on_c("touch", str(b.root / "from-c"))

    assert seen.returncode != 0 and "No such file" in seen.stderr
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    on_b = subprocess.run(hiding(["cat", str(secret)], [c.root]), capture_output=True, text=True)
    assert on_b.stdout == "b"


def test_jobs_flow_across_hosts_survive_a_lost_host_and_leave_nothing_behind(
    stack, s3_bucket, tmp_path
):
    def jobs_ended(ids) -> bool:
        return all(job_row(stack, i)[0] in ("completed", "failed", "cancelled") for i in ids)

    wait_for(
        lambda: all("ready for work" in stack.log(f"qcluster-{h}") for h in WORKERS),
        180,
        "both hosts' batch workers",
    )
    short = write_tone_wav(tmp_path / "short.wav", seconds=2)
    with stack.client() as client:
        ids = [submit(client, short, {"vad": False}) for _ in range(JOBS)]
        wait_for(lambda: jobs_ended(ids), 300, f"{JOBS} jobs")

        rows = [job_row(stack, i) for i in ids]
        assert Counter(status for status, _, _ in rows) == {"completed": JOBS}
        took = Counter(host for _, host, _ in rows)
        assert set(took) == set(WORKERS), f"both worker hosts take jobs: {took}"
        assert s3_bucket.object_keys() == sorted(f"results/{i}.json" for i in ids)
        assert files_left(stack) == {name: [] for name in stack.hosts}
        served = client.get(f"/v1/jobs/{ids[0]}/result")  # by host A, from the bucket
        stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=f"results/{ids[0]}.json")
        assert served.status_code == 200 and served.content == stored["Body"].read()

        # A host lost mid-job: its job is completed by the other host.
        long_id = submit(client, write_tone_wav(tmp_path / "long.wav", seconds=600), {"vad": False})
        _, victim, _ = wait_for(
            lambda: (row := job_row(stack, long_id))[0] == "processing" and row[2] > 0 and row,
            120,
            "the long job to make progress",
        )
        survivor = next(h for h in WORKERS if h != victim)
        stack.kill_host(victim)
        killed_at = time.monotonic()
        wait_for(
            lambda: job_row(stack, long_id)[:2] == ("processing", survivor),
            RECOVERY_BUDGET_S,
            f"{survivor} to take over the job of {victim} (budget {RECOVERY_BUDGET_S} s)",
        )
        taken_over_s = time.monotonic() - killed_at
        wait_for(lambda: jobs_ended([long_id]), 600, "the long job to end on the survivor")
        assert job_row(stack, long_id)[0] == "completed"
        assert not [k for k in s3_bucket.object_keys() if not k.startswith("results/")]

        # The lost host kept its copy of the source; back up, it deletes it.
        left = files_left(stack)
        assert [p for p in left[victim] if f"/work/{long_id}/" in p], left
        stack.start_batch_workers(victim)
        wait_for(lambda: not stack.hosts[victim].files(), 180, f"{victim} to clean up")
        assert files_left(stack) == {name: [] for name in stack.hosts}

        # Erasure and the purge leave no object of any job.
        erased = [*ids[: JOBS // 2], long_id]
        for job_id in erased:
            assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert s3_bucket.object_keys() == sorted(f"results/{i}.json" for i in ids[JOBS // 2 :])
    purged = stack.run_on(survivor, sys.executable, "manage.py", "shell", "-c", PURGE)
    assert purged.returncode == 0, purged.stderr
    assert s3_bucket.object_keys() == []
    assert files_left(stack) == {name: [] for name in stack.hosts}
    logger.info("%s killed: its job taken over by %s after %.0f s", victim, survivor, taken_over_s)
