"""A web request that waits for its job: the synchronous endpoints (OpenAI's
``/v1/audio/transcriptions``, Deepgram's ``POST /v1/listen``) answer when the workers
finish the job they queued.

The wait runs on the event loop: each look at the job is one short query in a pool thread
that gives its database connection back at once, so a request waiting minutes for a long
file holds neither a thread nor a connection in between.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from scribe.db import unit_of_work
from transcription import storage
from transcription.models import Job

POLL_INTERVAL_S = 0.5  # how often a waiting request looks at its job

T = TypeVar("T")


async def in_pool(fn: Callable[..., T], **kwargs: Any) -> T:
    """Run blocking database work in a pool thread, as one unit: its connection is given
    back before this returns (none is held across the awaits in between)."""

    def unit() -> T:
        with unit_of_work():
            return fn(**kwargs)

    return await sync_to_async(unit, thread_sensitive=False)()


@dataclass(frozen=True)
class Partial:
    index: int
    text: str


@dataclass(frozen=True)
class JobState:
    status: str
    partials: tuple[Partial, ...]  # segments decoded since the index asked for
    error_code: str
    error_message: str
    result_path: str

    @property
    def ended(self) -> bool:
        return self.status in Job.TERMINAL


def job_state(*, job_id, partials_after: int | None = None) -> JobState:
    """The job's status, and the partial segments its worker has written past index
    ``partials_after`` (none read when it is None).

    One or two small queries, for a web process polling a running job.
    """
    job = Job.objects.only("status", "error_code", "error_message", "result_path").get(pk=job_id)
    partials: tuple[Partial, ...] = ()
    if partials_after is not None:
        rows = job.stream_segments.filter(index__gt=partials_after).order_by("index")
        partials = tuple(Partial(i, text) for i, text in rows.values_list("index", "text"))
    return JobState(
        status=job.status,
        partials=partials,
        error_code=job.error_code,
        error_message=job.error_message,
        result_path=job.result_path,
    )


def job_result(*, result_path: str) -> dict[str, Any]:
    """A completed job's stored json result."""
    return json.loads(storage.result_read(result_path))


async def job_ended(job_id: str, *, wait_s: float) -> JobState:
    """Wait up to ``wait_s`` for the job to end; its state then (``ended`` false: it still
    runs)."""
    deadline = time.monotonic() + wait_s
    while True:
        state = await in_pool(job_state, job_id=job_id)
        if state.ended or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(POLL_INTERVAL_S)


def still_running(job_id: str, status: str, wait_s: float, setting: str) -> str:
    return (
        f"The transcription is still {status} after {wait_s:g} s ({setting}); it goes on as "
        f"job {job_id}. Poll GET /v1/jobs/{job_id} and fetch "
        f"GET /v1/jobs/{job_id}/result?format=… when it is completed"
    )


def failure(state: JobState) -> tuple[int, str, str]:
    """Status, code and message of a job that ended without a transcript."""
    if state.status == Job.Status.CANCELLED:
        return (
            409,
            "job_cancelled",
            "The job was cancelled (POST /v1/jobs/{id}/cancel, or DELETE) before it ended.",
        )
    if state.error_code == "duration_too_long":
        return 413, state.error_code, state.error_message
    return 500, state.error_code or "job_failed", state.error_message or "The job failed."
