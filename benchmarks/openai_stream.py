#!/usr/bin/env python
"""The OpenAI-compatible endpoint through the official openai SDK, on the production
topology (daphne + ``manage.py qcluster``, one worker, on PostgreSQL; the e2e tests' Stack)
with the random-weight test model of Whisper tiny's dimensions.

On the same file of jfk.flac repeats (3 minutes by default), measures:

1. ``stream=True``: seconds from the upload's start to the first ``transcript.text.delta``,
   to the job's completion (``finished_at``, from the database) and to
   ``transcript.text.done``, and how many deltas came before the job completed.
2. without stream (``json``): seconds between the job's completion and the answer (the
   cost of waiting by polling, ``POLL_INTERVAL_S`` = 0.5 s).

Needs PostgreSQL on 127.0.0.1:5432 and ../shared/audio/jfk.flac.

    .venv/bin/python benchmarks/openai_stream.py [--minutes 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from engine_memory import django_ready, synthesize_speech_wav


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the file")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    args = parser.parse_args()
    django_ready()
    import openai

    from tests.e2e.stack import Stack
    from transcription.engine.testmodel import build_test_model

    tmp = Path(tempfile.mkdtemp(prefix="scribe-bench-openai-"))
    model_dir = build_test_model(tmp / "tiny", size="tiny")
    wav = synthesize_speech_wav(tmp / "speech.wav", args.minutes * 60)
    warm = synthesize_speech_wav(tmp / "warm.wav", 15)

    with Stack(
        tmp / "stack", model_dir, SCRIBE_WORKERS="1", SCRIBE_CPU_THREADS=str(args.threads)
    ) as stack:
        client = openai.OpenAI(
            base_url=f"{stack.base_url}/v1", api_key=stack.key, max_retries=0, timeout=600
        )

        def finished_at(job_id: str) -> float:
            [(moment,)] = stack.sql(
                "SELECT finished_at FROM transcription_job WHERE id = %s", job_id
            )
            return moment.timestamp()

        with warm.open("rb") as audio:  # the worker has its model loaded
            client.audio.transcriptions.create(file=audio, model="whisper-1")

        started = time.time()
        deltas: list[float] = []
        with wav.open("rb") as audio:
            stream = client.audio.transcriptions.create(file=audio, model="whisper-1", stream=True)
            job_id = stream.response.headers["x-scribe-job-id"]
            for event in stream:
                if event.type == "transcript.text.delta":
                    deltas.append(time.time())
                else:
                    done = time.time()
        finished = finished_at(job_id)
        early = sum(moment < finished for moment in deltas)
        print(
            f"stream: first delta {deltas[0] - started:.2f} s, job completed "
            f"{finished - started:.2f} s, done event {done - started:.2f} s after the upload "
            f"began; {early} of {len(deltas)} deltas before the job completed"
        )

        with wav.open("rb") as audio:
            raw = client.audio.transcriptions.with_raw_response.create(
                file=audio, model="whisper-1"
            )
            answered = time.time()
        job_id = raw.headers["x-scribe-job-id"]
        print(f"json: answered {answered - finished_at(job_id):.2f} s after the job completed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
