"""django-q2 tasks: thin entry points that call one service each."""

from __future__ import annotations

from scribe.logs import log_context
from transcription import erasure, recovery, runner


def job_run(job_id: str) -> None:
    with log_context(job_id=job_id):
        runner.job_process(job_id=job_id)


def jobs_recover() -> int:
    return recovery.jobs_recover()


def results_purge() -> tuple[int, int]:
    return erasure.retention_purge()
