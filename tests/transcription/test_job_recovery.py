from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from django_q.models import OrmQ

from transcription import recovery, runner
from transcription.management.commands.qcluster import planned_workers
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(api, job_settings, tone_wav) -> Job:
    with tone_wav.open("rb") as handle:
        response = api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps({})}, format="multipart"
        )
    return Job.objects.get(pk=response.json()["job_id"])


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def claim(job: Job, *, pid: int, host: str | None = None, seconds_ago: float = 0) -> None:
    assert job.mark_processing(host=host or settings.SCRIBE_HOSTNAME, pid=pid)
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_a_job_whose_worker_process_died_here_is_requeued_at_once(job):
    claim(job, pid=dead_pid())
    tasks_before = OrmQ.objects.count()

    assert recovery.jobs_recover() == 1

    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker_pid) == ("queued", 1, None)
    assert OrmQ.objects.count() == tasks_before + 1, "a new task was enqueued"
    assert default_storage.exists(job.source_path), "the audio is kept for the retry"


def test_a_job_of_a_silent_worker_elsewhere_is_requeued_after_the_stale_period(job, settings):
    claim(job, pid=1, host="another-host", seconds_ago=settings.SCRIBE_STALE_AFTER_S - 5)
    assert recovery.jobs_recover() == 0

    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.SCRIBE_STALE_AFTER_S + 5)
    )
    assert recovery.jobs_recover() == 1
    assert Job.objects.get(pk=job.pk).status == "queued"


def test_a_job_with_a_live_worker_is_left_alone(job):
    import os

    claim(job, pid=os.getpid())

    assert recovery.jobs_recover() == 0
    assert Job.objects.get(pk=job.pk).status == "processing"


def test_a_job_out_of_attempts_fails_with_a_clear_error_and_no_audio(job, settings):
    Job.objects.filter(pk=job.pk).update(attempts=settings.SCRIBE_JOB_MAX_ATTEMPTS - 1)
    job.refresh_from_db()
    claim(job, pid=dead_pid())
    source = job.source_path

    recovery.jobs_recover()

    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "worker_lost"
    assert f"stopped {settings.SCRIBE_JOB_MAX_ATTEMPTS} times" in job.error_message
    assert not default_storage.exists(source)


def test_a_job_cancelled_while_its_worker_died_ends_cancelled(job):
    claim(job, pid=dead_pid())
    job.request_cancel()

    recovery.jobs_recover()

    assert Job.objects.get(pk=job.pk).status == "cancelled"


def test_a_redelivered_task_for_a_finished_job_does_nothing(job):
    runner.job_process(job_id=str(job.id))
    job.refresh_from_db()
    finished = (job.status, job.attempts, job.finished_at)

    runner.job_process(job_id=str(job.id))

    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at) == finished == ("completed", 1, finished[2])


def test_qcluster_sizes_itself_from_the_device_plan(models_dir):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("detect", "--json", stdout=out)
    expected = sum(
        a["workers"] for a in json.loads(out.getvalue())["plans"]["batch"]["assignments"]
    )

    assert planned_workers() == expected >= 1


def lose_its_message(job: Job, *, seconds_ago: float) -> None:
    """What a flushed Redis does: the broker forgets the job, the database still has it."""
    OrmQ.objects.all().delete()
    Job.objects.filter(pk=job.pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def queued_task_names() -> list[str]:
    return [task.name() for task in OrmQ.objects.all()]


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(job, settings):
    lose_its_message(job, seconds_ago=settings.SCRIBE_REQUEUE_AFTER_S + 5)

    assert recovery.jobs_recover() == 1
    assert recovery.jobs_recover() == 0, "its new message is in the broker: not sent twice"

    assert queued_task_names() == [f"job-{job.id}"]
    job.refresh_from_db()
    assert timezone.now() - job.enqueued_at < timedelta(seconds=5)
    runner.job_process(job_id=str(job.id))
    assert Job.objects.get(pk=job.pk).status == "completed"


def test_a_queued_job_is_not_sent_again_while_its_message_waits_or_before_the_bound(job, settings):
    Job.objects.filter(pk=job.pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=settings.SCRIBE_REQUEUE_AFTER_S + 5)
    )
    assert recovery.jobs_recover() == 0, "its message is still in the broker"

    lose_its_message(job, seconds_ago=settings.SCRIBE_REQUEUE_AFTER_S - 5)
    assert recovery.jobs_recover() == 0, "it has not waited long enough to count as lost"
    assert queued_task_names() == []


def test_concurrent_recoveries_send_a_lost_job_once(job, settings):
    lose_its_message(job, seconds_ago=settings.SCRIBE_REQUEUE_AFTER_S + 5)
    stale = Job.objects.get(pk=job.pk)  # what a second recovery read before the first sent

    assert recovery.jobs_resend_lost() == 1
    assert stale.mark_resent(now=timezone.now()) is False
    assert queued_task_names() == [f"job-{job.id}"]


def test_the_recovery_log_names_the_dead_worker(job, caplog):
    pid = dead_pid()
    claim(job, pid=pid)

    with caplog.at_level("WARNING", logger="transcription.recovery"):
        recovery.jobs_recover()

    assert f"worker {settings.SCRIBE_HOSTNAME}/{pid} is gone" in caplog.text


def test_the_heartbeat_of_a_running_job_keeps_it_from_being_taken_for_dead(job, settings):
    import os
    import time

    claim(job, pid=os.getpid(), host="another-host", seconds_ago=settings.SCRIBE_STALE_AFTER_S + 5)
    silent_since = Job.objects.get(pk=job.pk).heartbeat_at

    heartbeat = runner._Heartbeat(job, interval_s=0.05)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while Job.objects.get(pk=job.pk).heartbeat_at == silent_since:
            assert time.monotonic() < deadline, "no heartbeat was written"
            time.sleep(0.05)
    finally:
        heartbeat.stop()

    assert timezone.now() - Job.objects.get(pk=job.pk).heartbeat_at < timedelta(seconds=5)
    assert recovery.jobs_recover() == 0
    assert Job.objects.get(pk=job.pk).status == "processing"


def test_a_worker_elsewhere_is_not_taken_for_dead_by_a_pid_missing_on_this_host(job):
    # Its PID means nothing here: only its heartbeat says whether it is alive.
    claim(job, pid=dead_pid(), host="another-host")

    assert recovery.jobs_recover() == 0
    assert Job.objects.get(pk=job.pk).status == "processing"


def test_hosts_that_share_a_machine_name_are_told_apart_by_scribe_hostname(job, settings):
    # Two containers cloned from one image report the same machine name: a worker on
    # host B, whose PID means nothing on host A, is alive as long as it beats.
    settings.SCRIBE_HOSTNAME = "host-b"
    runner_pid = dead_pid()
    claim(job, pid=runner_pid, host=None)
    assert Job.objects.get(pk=job.pk).worker_host == "host-b"  # claimed under the setting

    settings.SCRIBE_HOSTNAME = "host-a"
    assert recovery.jobs_recover() == 0

    settings.SCRIBE_HOSTNAME = "host-b"  # its own host sees the process is gone
    assert recovery.jobs_recover() == 1


def test_a_job_already_taken_by_one_worker_is_not_claimed_by_another(job):
    second = Job.objects.get(pk=job.pk)  # a redelivered task, read while it was queued

    assert job.mark_processing(host="worker-a", pid=101) is True
    assert second.mark_processing(host="worker-b", pid=202) is False

    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts, row.worker_host, row.worker_pid) == (
        "processing",
        1,
        "worker-a",
        101,
    )
