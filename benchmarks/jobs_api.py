#!/usr/bin/env python
"""End-to-end job overhead and API latency under load, on the production topology.

Starts daphne + ``manage.py qcluster`` (one worker, 2 CPU threads) on a fresh PostgreSQL
database (the e2e tests' Stack), with the random-weight test model of Whisper tiny's
dimensions, and measures side by side in one run:

1. ``ratio=``: upload → completed (the job's ``finished_at``, read from the database, minus
   the moment the upload started) ÷ the bare engine's ``transcribe()`` on the same
   ≥ 5-minute file with the same model and threads, in this process. Target ≤ 1.10.
   With ``--rounds N`` the bare run and the job alternate N times while the stack is up
   (idle during the bare run) and the median of the N ratios is reported: on a shared
   machine whose load drifts, a pair measured seconds apart compares like with like.
2. ``p95_ms=``: latency of ``GET /v1/jobs/{id}`` while the worker is busy transcribing on
   the same 2 cores. Target ≤ 50 ms.

Needs PostgreSQL on 127.0.0.1:5432 and ../shared/audio/jfk.flac.

    .venv/bin/python benchmarks/jobs_api.py [--minutes 6] [--requests 400] [--rounds 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from engine_memory import django_ready, synthesize_speech_wav

TARGET_RATIO = 1.10
TARGET_P95_MS = 50.0


def bare_engine_s(
    wav: Path, model_dir: Path, models_dir: Path, threads: int, *, keep: bool = False
) -> float:
    from transcription.engine import TranscribeOptions, model_manager, transcribe

    model = model_manager.get(
        str(model_dir),
        models_dir=models_dir,
        offline=True,
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
    )
    transcribe(wav, model, TranscribeOptions())  # warm-up: VAD model, caches
    started = time.perf_counter()
    transcribe(wav, model, TranscribeOptions())
    elapsed = time.perf_counter() - started
    if not keep:
        model_manager.clear()
        del model
        gc.collect()
    return elapsed


def paired_ratios(stack, client, wav: Path, model_dir: Path, models_dir: Path, args) -> None:
    """Alternate the bare engine and a job ``args.rounds`` times; print each ratio and
    the median."""
    ratios = []
    for round_ in range(1, args.rounds + 1):
        bare = bare_engine_s(wav, model_dir, models_dir, args.threads, keep=True)
        job_id, started = submit(client, wav)
        wait_done(client, job_id)
        end_to_end = finished_at(stack, job_id) - started
        ratios.append(end_to_end / bare)
        print(f"  round {round_}: bare {bare:.2f} s, job {end_to_end:.2f} s, {ratios[-1]:.3f}")
    ratio = statistics.median(ratios)
    print(
        f"paired_ratio={ratio:.3f} median of {args.rounds} (target <= {TARGET_RATIO}) "
        f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
    )


def submit(client, path: Path, options: dict | None = None) -> tuple[str, float]:
    started = time.time()
    with path.open("rb") as handle:
        response = client.post(
            "/v1/jobs",
            files={"file": (path.name, handle)},
            data={"options": json.dumps(options or {})},
        )
    response.raise_for_status()
    return response.json()["job_id"], started


def wait_done(client, job_id: str, poll_s: float = 0.5) -> dict:
    while True:
        body = client.get(f"/v1/jobs/{job_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(poll_s)


def finished_at(stack, job_id: str) -> float:
    [(moment,)] = stack.sql("SELECT finished_at FROM transcription_job WHERE id = %s", job_id)
    assert isinstance(moment, datetime)
    return moment.timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="length of the timed file")
    parser.add_argument("--requests", type=int, default=400, help="GETs for the latency run")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    parser.add_argument(
        "--rounds", type=int, default=1, help="also alternate bare run and job this many times"
    )
    args = parser.parse_args()
    django_ready()
    from tests.e2e.stack import Stack
    from transcription.engine.testmodel import build_test_model

    tmp = Path(tempfile.mkdtemp(prefix="scribe-bench-jobs-"))
    model_dir = build_test_model(tmp / "tiny", size="tiny")
    wav = synthesize_speech_wav(tmp / "speech.wav", args.minutes * 60)
    warm = synthesize_speech_wav(tmp / "warm.wav", 15)

    bare = bare_engine_s(wav, model_dir, tmp / "models", args.threads)
    print(f"bare engine transcribe(): {bare:.2f} s for {args.minutes * 60:.0f} s of audio")

    with (
        Stack(
            tmp / "stack", model_dir, SCRIBE_WORKERS="1", SCRIBE_CPU_THREADS=str(args.threads)
        ) as stack,
        stack.client() as client,
    ):
        wait_done(client, submit(client, warm)[0])  # the worker has its model loaded
        job_id, started = submit(client, wav)
        body = wait_done(client, job_id)
        end_to_end = finished_at(stack, job_id) - started
        ratio = end_to_end / bare
        print(f"end-to-end job (upload -> completed): {end_to_end:.2f} s, status {body['status']}")
        [(created, picked, done)] = stack.sql(
            "SELECT created_at, started_at, finished_at FROM transcription_job WHERE id = %s",
            job_id,
        )
        print(
            f"  upload+probe+store {created.timestamp() - started:.2f} s, waiting in queue "
            f"{(picked - created).total_seconds():.2f} s, in the worker "
            f"{(done - picked).total_seconds():.2f} s (engine alone "
            f"{body['summary']['processing_time_sec']:.2f} s)"
        )
        print(
            f"ratio={ratio:.3f} (target <= {TARGET_RATIO}) "
            f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
        )

        if args.rounds > 1:
            paired_ratios(stack, client, wav, model_dir, tmp / "models", args)

        busy_id, _ = submit(client, wav)
        while client.get(f"/v1/jobs/{busy_id}").json()["status"] != "processing":
            time.sleep(0.05)
        latencies_ms: list[float] = []
        busy = 0
        for _ in range(args.requests):
            started_req = time.perf_counter()
            response = client.get(f"/v1/jobs/{busy_id}")
            latencies_ms.append((time.perf_counter() - started_req) * 1000)
            status = response.json()["status"]
            busy += status == "processing"
            if status != "processing":
                break
        latencies_ms.sort()
        p50 = statistics.median(latencies_ms)
        p95 = latencies_ms[int(0.95 * (len(latencies_ms) - 1))]
        p99 = latencies_ms[int(0.99 * (len(latencies_ms) - 1))]
        print(
            f"GET /v1/jobs/{{id}} while the worker is busy: {len(latencies_ms)} requests "
            f"({busy} answered 'processing'), p50={p50:.1f} ms p99={p99:.1f} ms "
            f"max={latencies_ms[-1]:.1f} ms"
        )
        print(
            f"p95_ms={p95:.1f} (target <= {TARGET_P95_MS}) "
            f"{'PASS' if p95 <= TARGET_P95_MS else 'FAIL'}"
        )
        client.post(f"/v1/jobs/{busy_id}/cancel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
