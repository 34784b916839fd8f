"""django-q2 tasks: thin entry points that call one service each."""

from __future__ import annotations

from transcription import services


def job_run(job_id: str) -> None:
    services.job_process(job_id=job_id)


def jobs_recover() -> int:
    return services.jobs_recover()


def results_purge() -> int:
    return services.job_results_purge()
