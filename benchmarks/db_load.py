#!/usr/bin/env python
"""PostgreSQL connections and the queue cap under load, on the production topology.

For each connection mode, starts daphne + ``manage.py qcluster`` (one worker) on a fresh
PostgreSQL database with Redis as broker (the e2e tests' Stack), and measures:

1. Load: while a long job runs, ``--gets`` ``GET /v1/jobs/{id}`` from ``--clients``
   concurrent clients plus ``--uploads`` uploads; ``pg_stat_activity`` is sampled every
   0.2 s and each server connection is traced to the process holding it. Prints the 5xx
   count, p50/p95 latency, the peak connections per process, and whether every job
   reached a terminal state.
2. Cap: ``--cap-uploads`` concurrent uploads against ``SCRIBE_MAX_QUEUED_JOBS=--cap`` with
   no worker taking jobs: how many were queued and how many got 429.

Modes, side by side in one run:
- ``pool``: what scribe ships (CONN_MAX_AGE=0, a psycopg pool of SCRIBE_DB_POOL_MAX=8).
- ``no-pool``: CONN_MAX_AGE=0 without a pool (SCRIBE_DB_POOL_MAX=0).
- ``old``: the commit before the fix (persistent connections, CONN_MAX_AGE=60), checked
  out into a temporary git worktree (``--old-commit``).

Needs PostgreSQL (127.0.0.1:5432, ``max_connections`` as shipped) and Redis (6379).

    .venv/bin/python benchmarks/db_load.py [--modes pool,no-pool,old] [--gets 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.e2e.stack import Stack  # noqa: E402
from tests.media import write_tone_wav  # noqa: E402
from transcription.engine.testmodel import build_test_model  # noqa: E402

OLD_COMMIT = "7a64d2b"  # persistent connections (CONN_MAX_AGE=60), no pool, soft cap
MODES = {
    "pool": {},
    "no-pool": {"SCRIBE_DB_POOL_MAX": "0"},
    "old": {},
}
TERMINAL = ("completed", "failed", "cancelled")


class ConnectionSampler(threading.Thread):
    """Sample the stack's server connections and trace each to the process holding it."""

    def __init__(self, stack: Stack, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.stack, self.interval_s = stack, interval_s
        self.stopped = threading.Event()
        self.peak: dict[str, int] = defaultdict(int)
        self.peak_total = 0
        self.refused = 0

    def _label(self, pid: int) -> str:
        try:
            cmd = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            return f"pid {pid} (gone)"
        role = "daphne" if "daphne" in cmd else "qcluster" if "qcluster" in cmd else cmd[:40]
        return f"{role} pid {pid}"

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                ports = {
                    port
                    for (port,) in self.stack.sql(
                        "SELECT client_port FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()",
                        self.stack.database,
                    )
                }
            except Exception:  # the server refused us too: too many clients
                self.refused += 1
                continue
            by_pid: Counter[int] = Counter(
                c.pid
                for c in psutil.net_connections(kind="tcp")
                if c.pid and c.laddr and c.laddr.port in ports and c.raddr and c.raddr.port == 5432
            )
            self.peak_total = max(self.peak_total, sum(by_pid.values()))
            for pid, count in by_pid.items():
                label = self._label(pid)
                self.peak[label] = max(self.peak[label], count)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


async def load(stack: Stack, job_id: str, audio: Path, gets: int, clients: int, uploads: int):
    """Fire the GETs and the uploads together; return (latencies_ms, statuses, job ids)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    created: list[str] = []
    headers = {"Authorization": f"Bearer {stack.key}"}
    limits = httpx.Limits(max_connections=clients + 10)
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers=headers, timeout=60, limits=limits
    ) as client:
        left = [gets]

        async def poll() -> None:
            while left[0] > 0:
                left[0] -= 1
                started = time.perf_counter()
                try:
                    response = await client.get(f"/v1/jobs/{job_id}")
                    statuses[response.status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1
                latencies.append((time.perf_counter() - started) * 1000)

        data = audio.read_bytes()
        sem = asyncio.Semaphore(10)

        async def upload() -> None:
            async with sem:
                try:
                    response = await client.post(
                        "/v1/jobs", files={"file": ("a.wav", data)}, data={"options": "{}"}
                    )
                    statuses[response.status_code] += 1
                    if response.status_code == 202:
                        created.append(response.json()["job_id"])
                except httpx.HTTPError:
                    statuses[0] += 1

        await asyncio.gather(*[poll() for _ in range(clients)], *[upload() for _ in range(uploads)])
    return latencies, statuses, created


def wait_terminal(stack: Stack, job_ids: list[str], timeout_s: float) -> Counter[str]:
    deadline = time.monotonic() + timeout_s
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            rows = stack.sql(
                "SELECT status, count(*) FROM transcription_job WHERE id = ANY(%s::uuid[]) "
                "GROUP BY status",
                job_ids,
            )
            counts = Counter(dict(rows))
            if sum(counts[s] for s in TERMINAL) == len(job_ids):
                break
        time.sleep(1)
    return counts


def run_load(mode: str, root: Path, tmp: Path, model_dir: Path, args) -> None:
    long_audio = write_tone_wav(tmp / "long.wav", seconds=args.long_s)
    short_audio = write_tone_wav(tmp / "short.wav", seconds=1)
    redis_url = f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}"
    # No rate limit: every GET must reach the database, not stop at the throttle.
    env = {"SCRIBE_WORKERS": "1", "REDIS_URL": redis_url, "SCRIBE_RATE_LIMIT": "", **MODES[mode]}
    with Stack(tmp / f"load-{mode}", model_dir, root=root, **env) as stack:
        with stack.client() as client, long_audio.open("rb") as handle:
            long_job = client.post(
                "/v1/jobs",
                files={"file": ("long.wav", handle)},
                data={"options": '{"vad": false}'},
            ).json()["job_id"]
            while client.get(f"/v1/jobs/{long_job}").json()["status"] != "processing":
                time.sleep(0.1)
        sampler = ConnectionSampler(stack)
        sampler.start()
        started = time.perf_counter()
        try:
            latencies, statuses, created = asyncio.run(
                load(stack, long_job, short_audio, args.gets, args.clients, args.uploads)
            )
            elapsed = time.perf_counter() - started
            [(long_status,)] = stack.sql(
                "SELECT status FROM transcription_job WHERE id = %s", long_job
            )
            finished = wait_terminal(stack, [long_job, *created], args.drain_s)
        finally:
            sampler.stop()
    latencies.sort()
    server_errors = sum(n for code, n in statuses.items() if code >= 500 or code == 0)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"[{mode}] load: {len(latencies)} GETs from {args.clients} clients + {args.uploads} "
        f"uploads in {elapsed:.1f} s; the long job was {long_status} at the end of the load"
    )
    print(f"[{mode}]   statuses {dict(sorted(statuses.items()))}; 5xx_or_failed={server_errors}")
    print(
        f"[{mode}]   GET p50={statistics.median(latencies):.0f} ms p95_ms={p95:.0f} "
        f"max={latencies[-1]:.0f} ms"
    )
    print(
        f"[{mode}]   peak server connections: total {sampler.peak_total}; per process "
        + ", ".join(f"{label}: {n}" for label, n in sorted(sampler.peak.items()))
        + (f"; the sampler itself was refused {sampler.refused} times" if sampler.refused else "")
    )
    terminal = sum(finished[s] for s in TERMINAL)
    print(
        f"[{mode}]   jobs terminal {terminal}/{len(created) + 1} after the load ({dict(finished)})"
    )


def run_cap(mode: str, root: Path, tmp: Path, model_dir: Path, args) -> None:
    short_audio = write_tone_wav(tmp / "cap.wav", seconds=1)
    env = {"SCRIBE_MAX_QUEUED_JOBS": str(args.cap), "SCRIBE_RATE_LIMIT": "", **MODES[mode]}
    with Stack(tmp / f"cap-{mode}", model_dir, root=root, batch_workers=False, **env) as stack:
        data = short_audio.read_bytes()

        async def burst() -> Counter[int]:
            codes: Counter[int] = Counter()
            headers = {"Authorization": f"Bearer {stack.key}"}
            limits = httpx.Limits(max_connections=args.cap_uploads)
            async with httpx.AsyncClient(
                base_url=stack.base_url, headers=headers, timeout=120, limits=limits
            ) as client:

                async def one() -> None:
                    try:
                        r = await client.post(
                            "/v1/jobs", files={"file": ("a.wav", data)}, data={"options": "{}"}
                        )
                        codes[r.status_code] += 1
                    except httpx.HTTPError:
                        codes[0] += 1

                await asyncio.gather(*[one() for _ in range(args.cap_uploads)])
            return codes

        codes = asyncio.run(burst())
        [(queued,)] = stack.sql("SELECT count(*) FROM transcription_job WHERE status='queued'")
    verdict = "HOLDS" if queued <= args.cap else "OVERSHOT"
    print(
        f"[{mode}] cap: {args.cap_uploads} concurrent uploads against a cap of {args.cap}: "
        f"queued={queued} ({verdict}); statuses {dict(sorted(codes.items()))}"
    )


@contextlib.contextmanager
def checkout(mode: str, commit: str):
    """The code a mode runs: this tree, or ``commit`` in a temporary worktree."""
    if mode != "old":
        yield REPO_ROOT
        return
    target = Path(tempfile.mkdtemp(prefix="scribe-old-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(target), commit],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield target
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(target)],
            cwd=REPO_ROOT,
            check=False,
            capture_output=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="pool,no-pool,old")
    parser.add_argument("--gets", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--cap", type=int, default=200)
    parser.add_argument("--cap-uploads", type=int, default=250)
    parser.add_argument("--long-s", type=float, default=1800, help="audio of the running job")
    parser.add_argument("--drain-s", type=float, default=300, help="wait for jobs to end")
    parser.add_argument("--old-commit", default=OLD_COMMIT)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix="scribe-bench-db-"))
    model_dir = build_test_model(tmp / "micro", size="micro")
    for mode in args.modes.split(","):
        with checkout(mode, args.old_commit) as root:
            run_load(mode, root, tmp, model_dir, args)
            run_cap(mode, root, tmp, model_dir, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
