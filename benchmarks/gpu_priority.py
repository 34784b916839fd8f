#!/usr/bin/env python
"""Streams before batch on one GPU: p95 live lag beside a batch job, with and without
realtime priority (SCRIBE_REALTIME_PRIORITY).

Needs a CUDA GPU, PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and
../shared/audio. Starts the production topology twice (daphne + ``qcluster`` with one
batch worker + ``runworker realtime``, all on ``cuda``), once with priority on and once
off; each time it queues long batch jobs, waits until the first one decodes, then plays
``--streams`` concurrent real-time streams of the same clip and measures, for every word
of every final, the moment the final arrived minus the moment the word's end was sent.
It prints p50/p95 of that lag per run, how long the batch worker waited for the streams
(from the job's run time), the GPU's name and the device plan both lanes shared.

The model is a CTranslate2 Whisper directory (``--model-dir``, e.g. large-v3-turbo copied
to the GPU host), else the real tiny.en of the ``realmodel`` extra, else the random-weight
test model of Whisper tiny's dimensions (latency only: its hypotheses never agree).

    .venv/bin/python benchmarks/gpu_priority.py [--streams 4] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine_memory import SHARED_AUDIO, django_ready, synthesize_speech_wav
from realtime_latency import percentile, submit, wait_decoding
from realtime_real import stream_many


def gpu_name() -> str | None:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


def model_for(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model_dir:
        return args.model_dir
    from tests.realmodel import real_model_dir

    found = real_model_dir()
    if found is not None:
        return found
    from transcription.engine.testmodel import build_test_model

    return build_test_model(tmp / "tiny", size="tiny")


def lags(runs) -> list[float]:
    values = []
    for run in runs:
        for event in run.events:
            if event["type"] == "final":
                values += [event["at"] - w["end"] for w in event["segment"].get("words") or []]
    return values


def measure(args: argparse.Namespace, tmp: Path, model_dir: Path, priority: bool) -> dict:
    from tests.e2e.stack import Stack

    source = SHARED_AUDIO / args.source
    batch_wav = synthesize_speech_wav(tmp / "batch.wav", args.batch_minutes * 60)
    with (
        Stack(
            tmp / f"stack-{priority}",
            model_dir,
            batch_workers=True,
            realtime_worker=True,
            REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
            SCRIBE_DEVICE="cuda",
            SCRIBE_WORKERS="1",
            SCRIBE_REALTIME_PRIORITY="true" if priority else "false",
        ) as stack,
        stack.client() as client,
    ):
        stack.key = stack.manage(
            "create_api_key", "--owner", "bench", "--scopes", "stream", "transcribe"
        ).strip()
        client.headers["Authorization"] = f"Bearer {stack.key}"
        plan = json.loads(stack.manage("detect", "--json"))
        stream_many(stack, source, 1)  # warm the realtime worker up
        batch_ids = [submit(client, batch_wav) for _ in range(args.batch_jobs)]
        wait_decoding(client, batch_ids[0], timeout_s=600)
        started = time.perf_counter()
        runs = stream_many(stack, source, args.streams)
        wall = time.perf_counter() - started
        statuses = [client.get(f"/v1/jobs/{i}").json()["status"] for i in batch_ids]
        processed = client.get(f"/v1/jobs/{batch_ids[0]}").json().get("processed_sec")
        for batch_id, status in zip(batch_ids, statuses, strict=True):
            if status in ("queued", "processing"):
                client.post(f"/v1/jobs/{batch_id}/cancel")
    values = lags(runs)
    return {
        "priority": priority,
        "streams": args.streams,
        "words": len(values),
        "p50_s": percentile(values, 0.5),
        "p95_s": percentile(values, 0.95),
        "wall_s": round(wall, 1),
        "batch_busy_throughout": "processing" in statuses,
        "batch_processed_s": processed,
        "errors": [e for run in runs for e in run.errors],
        "plan": {lane: p["assignments"] for lane, p in plan["plans"].items()},
        "gpu_budgets": plan.get("gpu_budgets"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--source", default="multilingual.mp3", help="a clip in ../shared/audio")
    parser.add_argument("--model-dir", type=Path, help="a CTranslate2 Whisper model directory")
    parser.add_argument("--batch-minutes", type=float, default=30.0)
    parser.add_argument("--batch-jobs", type=int, default=4)
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    name = gpu_name()
    if name is None:
        print("No CUDA GPU here (nvidia-smi not found or failing): this benchmark needs one.")
        return 2
    django_ready()
    results = []
    with tempfile.TemporaryDirectory(prefix="scribe-bench-gpu-priority-") as tmp:
        model_dir = model_for(args, Path(tmp))
        print(f"gpu={name} model={model_dir} streams={args.streams}")
        for priority in (True, False):
            result = measure(args, Path(tmp), model_dir, priority)
            results.append(result)
            print(json.dumps(result, default=str))
    on, off = results
    print(f"{'':24}{'priority on':>14}{'priority off':>14}")
    for key in ("words", "p50_s", "p95_s", "batch_processed_s", "batch_busy_throughout"):
        print(f"{key:24}{on[key]!s:>14}{off[key]!s:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
