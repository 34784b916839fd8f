"""SIGKILL batch workers mid-job, again and again, and count what was lost.

Shared by the end-to-end test (a few kills) and benchmarks/worker_kill_trial.py (twenty).
A kill is what the OOM killer or a node drain does: no handler runs, the job's row still
says processing, its audio is still stored. The cluster's guard starts a new worker,
whose start-up recovery puts the job back in the queue; the trial counts jobs lost (never
terminal), stuck, claimed more often than they were killed (run twice), and audio left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.stack import Stack
from tests.e2e.test_jobs_e2e import wait_for
from tests.media import write_tone_wav

TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class TrialResult:
    jobs: int
    kills: int
    statuses: Counter = field(default_factory=Counter)
    not_terminal: list[str] = field(default_factory=list)
    # Jobs claimed more often than they were killed + 1: run twice.
    extra_claims: list[str] = field(default_factory=list)
    results_missing: list[str] = field(default_factory=list)
    audio_left: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return (
            not (self.not_terminal or self.extra_claims or self.results_missing or self.audio_left)
            and self.statuses["completed"] == self.jobs
        )

    def summary(self) -> str:
        return (
            f"{self.kills} kills over {self.jobs} jobs in {self.seconds:.0f} s: "
            f"{dict(self.statuses)}; lost/stuck {len(self.not_terminal)}, "
            f"run twice {len(self.extra_claims)}, results missing "
            f"{len(self.results_missing)}, audio files left {len(self.audio_left)}"
        )


def _submit(client: httpx.Client, audio: Path) -> str:
    with audio.open("rb") as handle:
        response = client.post(
            "/v1/jobs",
            files={"file": (audio.name, handle)},
            data={"options": json.dumps({"vad": False})},
        )
    response.raise_for_status()
    return response.json()["job_id"]


def run_kill_trial(
    stack: Stack, tmp: Path, *, jobs: int, kills: int, audio_s: float = 240, timeout_s=600
) -> TrialResult:
    """Submit ``jobs`` jobs, SIGKILL the worker of a running one ``kills`` times, wait
    for every job to end, and report. The stack needs SCRIBE_JOB_MAX_ATTEMPTS > kills."""
    started = time.monotonic()
    audio = write_tone_wav(tmp / "trial.wav", seconds=audio_s)
    result = TrialResult(jobs=jobs, kills=kills)
    killed: Counter = Counter()
    with stack.client() as client:
        ids = [_submit(client, audio) for _ in range(jobs)]

        def running_job():
            rows = stack.sql(
                "SELECT id::text, worker_pid FROM transcription_job "
                "WHERE status = 'processing' AND processed_s > 0 AND worker_pid IS NOT NULL"
            )
            return rows[0] if rows else None

        for _ in range(kills):
            job_id, pid = wait_for(running_job, timeout_s, "a job making progress")
            os.kill(pid, signal.SIGKILL)
            killed[job_id] += 1
            # Until recovery has seen the death, the row still names the dead pid.
            wait_for(
                lambda job_id=job_id, pid=pid: (
                    not stack.sql(
                        "SELECT 1 FROM transcription_job WHERE id = %s AND worker_pid = %s",
                        job_id,
                        pid,
                    )
                ),
                timeout_s,
                "recovery of the killed job",
            )

        def all_ended():
            rows = stack.sql("SELECT status FROM transcription_job")
            return all(status in TERMINAL for (status,) in rows)

        with contextlib.suppress(AssertionError):  # counted below as not terminal
            wait_for(all_ended, timeout_s, "every job to end")
        for job_id in ids:
            body = client.get(f"/v1/jobs/{job_id}").json()
            result.statuses[body["status"]] += 1
            if body["status"] not in TERMINAL:
                result.not_terminal.append(job_id)
            if body["attempts"] > killed[job_id] + 1:
                result.extra_claims.append(job_id)
            if (
                body["status"] == "completed"
                and not (stack.media / "results" / f"{job_id}.json").is_file()
            ):
                result.results_missing.append(job_id)
    sources = stack.media / "sources"
    result.audio_left = (
        [str(p) for p in sources.rglob("*") if p.is_file()] if sources.exists() else []
    )
    result.seconds = time.monotonic() - started
    return result
