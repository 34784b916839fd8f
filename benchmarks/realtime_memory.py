#!/usr/bin/env python
"""Memory of the realtime worker over one long live session, on the production topology.

A live session keeps a rolling audio buffer of at most ``MAX_BUFFER_S``, so the realtime
worker's memory should stay flat however long a session runs. This benchmark checks that:

1. it starts daphne + ``manage.py qcluster`` + ``manage.py runworker realtime`` on Redis
   and a fresh PostgreSQL database (the e2e tests' Stack), with the random-weight "micro"
   test model (Whisper's architecture, tiny dimensions: nonsense text, real code paths);
2. it warms the worker up with a short stream, so the model and VAD are loaded;
3. it streams 30 minutes of real speech (../shared/audio/jfk.flac repeated with 1 s gaps)
   into one session through ``/v1/stream`` faster than real time (``--speed``; the default,
   20×, is the fastest at which the worker sent no ``falling_behind``/``dropping_audio``
   backpressure errors on a 2-core machine: 30× and 40× got ``falling_behind``), while a
   thread samples the runworker process's RSS (``/proc/<pid>/status`` VmRSS) every second.

It prints the RSS at 10/25/50/75/100 % of the session, min/max after the first 10 %, the
number of finals and the session's audio seconds, any error events, and
``ratio_last_over_first_quarter=`` (RSS at 100 % ÷ RSS at 25 %) against a target of
<= 1.15. A session that ends before all its audio was sent (a ``decode_failed`` error, say)
is reported as ``STREAM INCOMPLETE`` and fails.

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and ../shared/audio/jfk.flac.

    .venv/bin/python benchmarks/realtime_memory.py [--minutes 30] [--speed 20] [--redis-db 13]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

from engine_memory import django_ready, synthesize_speech_wav

TARGET_RATIO = 1.15
FRACTIONS = (10, 25, 50, 75, 100)
BACKPRESSURE = {"falling_behind", "dropping_audio"}


def rss_mb(pid: int) -> float | None:
    """VmRSS of process ``pid`` in MB, or None once it is gone."""
    try:
        with Path(f"/proc/{pid}/status").open() as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Record (monotonic time, RSS in MB) of another process every ``interval_s``."""

    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = rss_mb(self.pid)
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def rss_at(samples: list[tuple[float, float]], moment: float) -> float:
    """The last RSS sample taken at or before ``moment``."""
    eligible = [rss for t, rss in samples if t <= moment]
    return eligible[-1] if eligible else samples[0][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="session length (audio)")
    parser.add_argument("--speed", type=float, default=20.0, help="× real time")
    parser.add_argument("--model", default="micro", choices=["micro", "tiny"])
    parser.add_argument("--sample-s", type=float, default=1.0, help="RSS sampling interval")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis db of this benchmark")
    args = parser.parse_args()
    django_ready()
    import websockets

    from realtime.client import StreamRun, stream_file
    from tests.e2e.stack import Stack
    from transcription.engine.testmodel import build_test_model

    wall_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scribe-bench-rt-memory-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = build_test_model(tmp / args.model, size=args.model)
        wav = synthesize_speech_wav(tmp / "session.wav", args.minutes * 60)
        warm = synthesize_speech_wav(tmp / "warm.wav", 10)
        print(
            f"model={args.model} (random weights) session={args.minutes:g} min of jfk.flac "
            f"repeats speed={args.speed:g} redis_db={args.redis_db}"
        )
        with Stack(
            tmp / "stack",
            model_dir,
            batch_workers=True,
            realtime_worker=True,
            REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
            SCRIBE_WORKERS="1",
        ) as stack:
            stack.key = stack.manage(
                "create_api_key", "--owner", "bench", "--scopes", "stream", "transcribe"
            ).strip()
            url = f"ws://127.0.0.1:{stack.port}/v1/stream"
            worker = next(p for p in stack.processes if "runworker" in p.args)

            warm_run = asyncio.run(stream_file(url, stack.key, warm, speed=4.0))
            rss_warm = rss_mb(worker.pid)
            print(
                f"warm-up stream: {warm_run.audio_s:.1f} s of audio, {len(warm_run.finals)} "
                f"finals; runworker RSS after it: {rss_warm:.1f} MB"
            )

            sampler = RssSampler(worker.pid, args.sample_s)
            sampler.start()
            events: list[dict] = []
            problem = None
            started = time.monotonic()
            try:
                run = asyncio.run(
                    stream_file(url, stack.key, wav, speed=args.speed, on_event=events.append)
                )
            except websockets.ConnectionClosed as exc:  # closed while frames were being sent
                problem = f"the server closed the stream early: {exc}"
                run = StreamRun(events=events, close_code=exc.rcvd.code if exc.rcvd else None)
            ended = time.monotonic()
            if problem:  # frames are paced: what was sent follows from the time it took
                run.audio_s = min(args.minutes * 60, (ended - started) * args.speed)
            last = rss_mb(worker.pid)
            sampler.stop()
            if last is not None:
                sampler.samples.append((ended, last))
            worker_alive = worker.poll() is None

    samples = [(t, rss) for t, rss in sampler.samples if started <= t <= ended]
    session_s = ended - started
    at = {f: rss_at(samples, started + f / 100 * session_s) for f in FRACTIONS}
    settled = [rss for t, rss in samples if t >= started + 0.10 * session_s]
    closed = [e for e in run.events if e["type"] == "closed"]
    backpressure = [e for e in run.errors if e.get("code") in BACKPRESSURE]

    print(
        f"session: audio_s={run.audio_s:.1f} wall_s={session_s:.1f} "
        f"(x{run.audio_s / session_s:.1f} real time) finals={len(run.finals)} "
        f"close_code={run.close_code} closed={'yes' if closed else 'no'} "
        f"worker_alive={worker_alive}"
    )
    expected_s = args.minutes * 60
    complete = problem is None and bool(closed) and run.audio_s >= expected_s - 0.5
    if problem:
        print(f"STREAM INCOMPLETE: {problem}; events until then: {len(run.events)}")
    elif not complete:
        print(
            f"STREAM INCOMPLETE: the session closed after {run.audio_s:.1f} of "
            f"{expected_s:.0f} s of audio (see the error events)"
        )
    print(f"error events: {len(run.errors)} ({len(backpressure)} backpressure)")
    for event in run.errors:
        print(f"  at {event['at']:.1f} s: {event.get('code')}: {event.get('message')}")
    print(
        "runworker RSS during the session (MB): "
        + " ".join(f"{f}%={at[f]:.1f}" for f in FRACTIONS)
        + f" min={min(settled):.1f} max={max(settled):.1f} (after the first 10 %)"
        + f" samples={len(samples)}"
    )
    ratio = at[100] / at[25]
    verdict = "PASS" if ratio <= TARGET_RATIO and complete else "FAIL"
    note = "" if complete else " (the session did not run its full length)"
    print(f"ratio_last_over_first_quarter={ratio:.3f} (target <= {TARGET_RATIO}) {verdict}{note}")
    print(f"wall_time_s={time.perf_counter() - wall_started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
