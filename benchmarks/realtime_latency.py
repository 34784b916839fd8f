#!/usr/bin/env python
"""Live-streaming latency on the production topology, idle and beside a batch job.

Starts daphne + ``manage.py qcluster`` (one batch worker) + ``manage.py runworker
realtime`` on Redis and a fresh PostgreSQL database (the e2e tests' Stack), with the
random-weight test model of Whisper tiny's dimensions as both the batch and the realtime
model (one CPU thread each), warms the realtime worker up with a short stream, then plays
~60 s of real speech into ``/v1/stream`` at real time, twice:

A. idle: nothing else runs;
B. busy: the batch worker transcribes long batch jobs (synthesized speech: jfk.flac
   repeated, submitted with the same key through ``POST /v1/jobs``) on the same 2 cores
   while the stream plays; several are queued, because the test model transcribes 30
   minutes in well under a minute, and what is left is cancelled
   (``POST /v1/jobs/{id}/cancel``) afterwards.

For each run it prints:

- ``first_partial_s``: when the first partial came back, in seconds since the stream
  started (the client's clock, connection included);
- final lag: for every word of every final, the moment the final arrived minus the moment
  the word's end was sent (its end time in the audio ÷ speed), p50/p95/max over all words,
  and how many words were only finalised by the stop (the session's flush);
- partial lag: the moment each partial arrived minus the moment its last word's end was
  sent; it follows the decode cadence, so it shows CPU contention where final lag may not;
- ``compute/wall``: the session's decode time ÷ its audio duration, from the completed
  stream job (``GET /v1/jobs/{id}`` summary).

Targets: first partial <= 5 s, idle p95 final lag <= 5 s, busy p95 <= 1.5 × idle p95.

With ``--real`` it measures the real tiny.en model instead (``realtime_real.py``): step
time before and after, accuracy and latency against the batch lane, sessions per worker.

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and ../shared/audio.

    .venv/bin/python benchmarks/realtime_latency.py [--source multilingual.mp3] [--redis-db 14]
    .venv/bin/python benchmarks/realtime_latency.py --real --threads 2 [--sessions 1,2,4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from engine_memory import SHARED_AUDIO, django_ready, synthesize_speech_wav

TARGET_FIRST_PARTIAL_S = 5.0
TARGET_P95_IDLE_S = 5.0
TARGET_BUSY_OVER_IDLE = 1.5


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))] if ordered else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def stream(stack, path: Path, speed: float, stop_after_s: float | None = None):
    """Play ``path`` into the stack; a session the server ends early keeps its events."""
    import websockets

    from realtime.client import StreamRun, stream_file

    url = f"ws://127.0.0.1:{stack.port}/v1/stream"
    events: list[dict] = []
    started = time.monotonic()
    try:
        return asyncio.run(
            stream_file(
                url,
                stack.key,
                path,
                speed=speed,
                stop_after_s=stop_after_s,
                on_event=events.append,
            )
        )
    except websockets.ConnectionClosed as exc:  # closed while frames were being sent
        print(f"STREAM INCOMPLETE: the server closed the stream early: {exc}")
        run = StreamRun(events=events, close_code=exc.rcvd.code if exc.rcvd else None)
        run.audio_s = (time.monotonic() - started) * speed  # frames are paced
        return run


def analyse(run, speed: float) -> dict:
    """Latency figures of one stream run."""
    events = run.events
    partials = [e for e in events if e["type"] == "partial"]
    finals = [e for e in events if e["type"] == "final"]
    # The stop is sent right after the last frame, paced at `speed`: finals that arrive
    # after it, in the run of finals that ends with "closed", come from the session's flush.
    stop_at = run.audio_s / speed
    flushed: set[int] = set()
    for position in range(len(events) - 1, -1, -1):
        event = events[position]
        if event["type"] == "closed":
            continue
        if event["type"] != "final" or event["at"] < stop_at - 0.5:
            break
        flushed.add(id(event))
    lags, lags_live, words, words_flushed = [], [], 0, 0
    spans = [e["segment"]["end"] - e["segment"]["start"] for e in finals]
    # How long after its last word's end each final came: the wait for the segment to close.
    end_lags = [e["at"] - e["segment"]["end"] / speed for e in finals]
    for event in finals:
        for word in event["segment"]["words"]:
            lag = event["at"] - word["end"] / speed
            lags.append(lag)
            words += 1
            if id(event) in flushed:
                words_flushed += 1
            else:
                lags_live.append(lag)
    # How far behind the audio the partials are: the step cadence, which CPU load affects.
    partial_lags = [e["at"] - e["end"] / speed for e in partials]
    closed = [e for e in events if e["type"] == "closed"]
    return {
        "first_partial_s": partials[0]["at"] if partials else float("nan"),
        "first_final_s": finals[0]["at"] if finals else float("nan"),
        "partials": len(partials),
        "finals": len(finals),
        "words": words,
        "words_flushed": words_flushed,
        "finals_flushed": len(flushed),
        "p50": percentile(lags, 0.5),
        "p95": percentile(lags, 0.95),
        "max": max(lags) if lags else float("nan"),
        "p95_live": percentile(lags_live, 0.95),
        "partial_lag_p50": percentile(partial_lags, 0.5),
        "partial_lag_p95": percentile(partial_lags, 0.95),
        "span_p50": percentile(spans, 0.5),
        "span_max": max(spans) if spans else float("nan"),
        "end_lag_p50": percentile(end_lags, 0.5),
        "end_lag_max": max(end_lags) if end_lags else float("nan"),
        "audio_s": run.audio_s,
        "stop_at": stop_at,
        "closed_at": closed[-1]["at"] if closed else float("nan"),
        "job_id": closed[-1].get("job_id") if closed else None,
        "errors": [(e["at"], e.get("code"), e.get("message")) for e in run.errors],
        "close_code": run.close_code,
    }


def job_ratio(client, job_id: str | None) -> tuple[float, dict]:
    if not job_id:
        return float("nan"), {}
    body = client.get(f"/v1/jobs/{job_id}").json()
    summary = body.get("summary") or {}
    processing, duration = summary.get("processing_time_sec"), summary.get("duration_sec")
    ratio = processing / duration if processing is not None and duration else float("nan")
    return ratio, summary


def submit(client, path: Path) -> str:
    with path.open("rb") as handle:
        response = client.post(
            "/v1/jobs", files={"file": (path.name, handle)}, data={"options": json.dumps({})}
        )
    response.raise_for_status()
    return response.json()["job_id"]


def wait_decoding(client, job_id: str, timeout_s: float = 120.0) -> dict:
    """Wait until the batch job is processing and has decoded something."""
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job_id}").json()
        if body["status"] not in ("queued", "processing"):
            raise RuntimeError(f"batch job ended before the stream: {body}")
        if body["status"] == "processing" and (body.get("processed_sec") or 0) > 0:
            return body
        time.sleep(0.2)
    raise RuntimeError(f"batch job did not start decoding in {timeout_s:.0f} s: {body}")


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'A idle':>14}  {'B with batch':>14}")
    for label, a, b in rows:
        print(f"{label:{width}}  {a:>14}  {b:>14}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        default="multilingual.mp3",
        help="a clip in ../shared/audio, a path, or 'jfk' for jfk.flac repeated",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed per run")
    parser.add_argument("--speed", type=float, default=1.0, help="× real time")
    parser.add_argument("--warmup-s", type=float, default=5.0, help="warm-up stream length")
    parser.add_argument("--batch-minutes", type=float, default=30.0, help="per batch job")
    parser.add_argument(
        "--batch-jobs", type=int, default=6, help="batch jobs queued for run B (must outlast it)"
    )
    parser.add_argument("--model", default="tiny", choices=["tiny", "micro"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    parser.add_argument("--redis-db", type=int, default=14, help="Redis db of this benchmark")
    parser.add_argument("--events-json", type=Path, help="write both runs' events here")
    parser.add_argument("--real", action="store_true", help="measure tiny.en (realtime_real.py)")
    parser.add_argument(
        "--sessions", default="1,2,4,8", help="--real: concurrent streams to sweep ('' skips)"
    )
    args = parser.parse_args()
    django_ready()
    if args.real:
        from realtime_real import main_real

        with tempfile.TemporaryDirectory(prefix="scribe-bench-rt-real-") as tmp:
            return main_real(args, Path(tmp))

    wall_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scribe-bench-rt-latency-") as tmp:
        results = measure(args, Path(tmp))
    report(results)
    print(f"wall_time_s={time.perf_counter() - wall_started:.1f}")
    return 0


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, dict]:
    """Run the warm-up, then streams A (idle) and B (beside a batch job); their figures."""
    from tests.e2e.stack import Stack
    from transcription.engine.testmodel import build_test_model

    model_dir = build_test_model(tmp / args.model, size=args.model)
    if args.source == "jfk":
        source = synthesize_speech_wav(tmp / "stream.wav", args.seconds)
    else:
        source = Path(args.source)
        if not source.is_file():
            source = SHARED_AUDIO / args.source
    warm = synthesize_speech_wav(tmp / "warm.wav", max(args.warmup_s, 1.0))
    batch_wav = synthesize_speech_wav(tmp / "batch.wav", args.batch_minutes * 60)
    print(
        f"model={args.model} (random weights) threads={args.threads} source={source.name} "
        f"seconds<={args.seconds:g} speed={args.speed:g} "
        f"batch={args.batch_jobs} x {args.batch_minutes:g} min "
        f"redis_db={args.redis_db}"
    )

    results: dict[str, dict] = {}
    with (
        Stack(
            tmp / "stack",
            model_dir,
            batch_workers=True,
            realtime_worker=True,
            REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
            SCRIBE_WORKERS="1",
            SCRIBE_CPU_THREADS=str(args.threads),
        ) as stack,
        stack.client() as client,
    ):
        stack.key = stack.manage(
            "create_api_key", "--owner", "bench", "--scopes", "stream", "transcribe"
        ).strip()
        client.headers["Authorization"] = f"Bearer {stack.key}"

        started = time.perf_counter()
        warm_run = stream(stack, warm, speed=1.0)
        print(
            f"warm-up stream: {warm_run.audio_s:.1f} s of audio, {len(warm_run.finals)} finals, "
            f"close_code={warm_run.close_code}, {time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        run_a = stream(stack, source, args.speed, stop_after_s=args.seconds)
        results["A"] = analyse(run_a, args.speed)
        results["A"]["ratio"], _ = job_ratio(client, results["A"]["job_id"])
        results["A"]["wall_s"] = time.perf_counter() - started

        batch_ids = [submit(client, batch_wav) for _ in range(args.batch_jobs)]
        before = wait_decoding(client, batch_ids[0])
        started = time.perf_counter()
        run_b = stream(stack, source, args.speed, stop_after_s=args.seconds)
        results["B"] = analyse(run_b, args.speed)
        results["B"]["wall_s"] = time.perf_counter() - started
        after = [client.get(f"/v1/jobs/{i}").json()["status"] for i in batch_ids]
        busy_throughout = "processing" in after
        results["B"]["ratio"], _ = job_ratio(client, results["B"]["job_id"])
        for batch_id, status in zip(batch_ids, after, strict=True):
            if status in ("queued", "processing"):
                client.post(f"/v1/jobs/{batch_id}/cancel")
        deadline = time.monotonic() + 30
        final = after
        while time.monotonic() < deadline and {"queued", "processing"} & set(final):
            time.sleep(0.5)
            final = [client.get(f"/v1/jobs/{i}").json()["status"] for i in batch_ids]
        print(
            f"batch jobs: the first had processed {before.get('processed_sec')} s when stream B "
            f"started; statuses when it ended: {', '.join(after)}; after cancel: "
            f"{', '.join(final)}"
        )
        if not busy_throughout:
            print(
                "WARNING: no batch job was still running when stream B ended: run B was not "
                "under load throughout; raise --batch-jobs or --batch-minutes"
            )
        if args.events_json:
            args.events_json.write_text(json.dumps({"A": run_a.events, "B": run_b.events}))
    return results


def report(results: dict[str, dict]) -> None:
    a, b = results["A"], results["B"]

    def both(key: str, fmt: str) -> tuple[str, str]:
        return format(a[key], fmt), format(b[key], fmt)

    print_table(
        [
            ("audio streamed (s)", *both("audio_s", ".1f")),
            ("stream wall (s)", *both("wall_s", ".1f")),
            ("first partial (s)", *both("first_partial_s", ".2f")),
            ("first final (s)", *both("first_final_s", ".2f")),
            ("partials", *both("partials", "d")),
            ("finals", *both("finals", "d")),
            ("final words", *both("words", "d")),
            ("words finalised only at stop", *both("words_flushed", "d")),
            ("final lag p50 (s)", *both("p50", ".2f")),
            ("final lag p95 (s)", *both("p95", ".2f")),
            ("final lag max (s)", *both("max", ".2f")),
            ("p95 without stop flush (s)", *both("p95_live", ".2f")),
            ("partial lag p50 (s)", *both("partial_lag_p50", ".2f")),
            ("partial lag p95 (s)", *both("partial_lag_p95", ".2f")),
            ("segment span p50 (s)", *both("span_p50", ".2f")),
            ("segment span max (s)", *both("span_max", ".2f")),
            ("lag of segment end p50 (s)", *both("end_lag_p50", ".2f")),
            ("lag of segment end max (s)", *both("end_lag_max", ".2f")),
            (
                "stop sent -> closed (s)",
                f"{a['closed_at'] - a['stop_at']:.2f}",
                f"{b['closed_at'] - b['stop_at']:.2f}",
            ),
            ("compute/wall", *both("ratio", ".3f")),
            ("errors", str(len(a["errors"])), str(len(b["errors"]))),
            ("close code", str(a["close_code"]), str(b["close_code"])),
        ]
    )
    for label, result in results.items():
        for at, code, message in result["errors"]:
            print(f"run {label} error at {at:.2f} s: {code}: {message}")
        if result["words_flushed"]:
            print(
                f"run {label}: {result['words_flushed']} of {result['words']} final words "
                f"({result['finals_flushed']} finals) were only finalised by the stop"
            )

    first = max(a["first_partial_s"], b["first_partial_s"])
    print(
        f"first_partial_s={a['first_partial_s']:.2f} idle, {b['first_partial_s']:.2f} busy "
        f"(target <= {TARGET_FIRST_PARTIAL_S}) {verdict(first <= TARGET_FIRST_PARTIAL_S)}"
    )
    print(
        f"p95_lag_idle_s={a['p95']:.2f} (target <= {TARGET_P95_IDLE_S}) "
        f"{verdict(a['p95'] <= TARGET_P95_IDLE_S)}"
    )
    ratio = b["p95"] / a["p95"] if a["p95"] > 0 else float("nan")
    print(
        f"p95_lag_busy_over_idle={ratio:.2f} ({b['p95']:.2f} / {a['p95']:.2f} s, target <= "
        f"{TARGET_BUSY_OVER_IDLE}) {verdict(ratio <= TARGET_BUSY_OVER_IDLE)}"
    )


if __name__ == "__main__":
    sys.exit(main())
