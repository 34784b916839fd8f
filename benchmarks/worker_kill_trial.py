"""Twenty SIGKILLs of batch workers mid-job on PostgreSQL + Redis: what is lost?

Runs the production topology (daphne + qcluster with two workers, PostgreSQL, Redis as
the broker) on the random-weight test model, submits jobs of 4 minutes of audio, and
SIGKILLs the worker of a running job --kills times, waiting after each kill until
recovery has taken the job back. Then it waits for every job to end and prints: jobs by
status, jobs never terminal (lost or stuck), jobs claimed more often than killed + 1
(run twice), completed jobs without a result, and audio files left behind.

    .venv/bin/python benchmarks/worker_kill_trial.py [--kills 20] [--jobs 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.e2e.kill_trial import run_kill_trial  # noqa: E402
from tests.e2e.stack import Stack  # noqa: E402
from transcription.engine.testmodel import build_test_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--audio-s", type=float, default=240)
    parser.add_argument("--redis-db", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = build_test_model(tmp / "micro", size="micro")
        with Stack(
            tmp,
            model,
            SCRIBE_WORKERS="2",
            SCRIBE_JOB_MAX_ATTEMPTS=str(args.kills + 2),
            REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
        ) as stack:
            result = run_kill_trial(
                stack, tmp, jobs=args.jobs, kills=args.kills, audio_s=args.audio_s, timeout_s=900
            )
    print(result.summary())
    print("verdict:", "PASS (nothing lost)" if result.clean else "FAIL")
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
