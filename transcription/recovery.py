"""Recovery: jobs whose worker is gone, and queued jobs whose broker message was lost.

Run every minute (the ``transcription.tasks.jobs_recover`` schedule) and when a batch
worker starts. The database is the queue's source of truth; the broker only carries
messages, so either side may lose a job and recovery finds it again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from realtime.services import stream_job_recover
from scribe.processes import pid_alive, this_host
from transcription.broker import pending_task_names
from transcription.erasure import erasures_finish
from transcription.models import Job
from transcription.services import job_enqueue, job_files_delete, job_task_name

logger = logging.getLogger(__name__)


def jobs_recover(*, now: datetime | None = None) -> int:
    """Retry (or fail, out of attempts) processing jobs whose worker is gone, send again
    the queued jobs whose broker message was lost, and erase ended jobs whose erasure a
    dead process did not finish.

    A worker is gone when its heartbeat is older than SCRIBE_STALE_AFTER_S, or at once when
    it ran on this host and its process no longer exists (SIGKILL, OOM killer).
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SCRIBE_STALE_AFTER_S)
    host = this_host()
    recovered = 0
    for job in Job.objects.processing():
        dead_here = job.worker_host == host and job.worker_pid and not pid_alive(job.worker_pid)
        stale = job.heartbeat_at is None or job.heartbeat_at < stale_before
        if not (dead_here or stale):
            continue
        recovered += 1
        if job.kind == Job.Kind.STREAM:
            stream_job_recover(job=job)
            continue
        worker = f"{job.worker_host}/{job.worker_pid}"  # before a transition clears them
        if job.cancel_requested_at is not None:
            ended = job.mark_cancelled()
        elif job.attempts >= settings.SCRIBE_JOB_MAX_ATTEMPTS:
            ended = job.mark_failed(
                code="worker_lost",
                message=f"The worker processing this job stopped {job.attempts} times "
                "(killed or out of memory). Try a shorter file, or ask the operator to check "
                "the worker's memory.",
            )
        else:
            if job.mark_requeued():
                logger.warning("job %s: worker %s is gone; retrying", job.id, worker)
                job_enqueue(job=job)
            # Requeued here or by a concurrent recovery: either way its audio is needed.
            continue
        if ended:
            logger.warning("job %s: worker %s is gone; job %s", job.id, worker, job.status)
            job_files_delete(job=job)
    return recovered + jobs_resend_lost(now=now) + erasures_finish()


def jobs_resend_lost(*, now: datetime | None = None) -> int:
    """Send again the queued jobs that have waited SCRIBE_REQUEUE_AFTER_S with no message
    in the broker (Redis flushed, or restarted without persistence).

    Idempotent: concurrent recoveries resend a job once (``mark_resent`` is conditional),
    and a job whose message turns out not to be lost runs once (only one worker can claim
    it). Returns the number of jobs sent again.
    """
    now = now or timezone.now()
    waiting = list(
        Job.objects.sent_before(now - timedelta(seconds=settings.SCRIBE_REQUEUE_AFTER_S))
    )
    if not waiting:
        return 0
    pending = pending_task_names()
    resent = 0
    for job in waiting:
        if pending is not None and job_task_name(job) in pending:
            continue
        if job.mark_resent(now=now):
            logger.warning(
                "job %s: queued since %s with no message in the broker; sending it again",
                job.id,
                job.created_at.isoformat(),
            )
            job_enqueue(job=job)
            resent += 1
    return resent
