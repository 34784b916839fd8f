"""``realtime_latency.py --real``: live captions on the real tiny.en model.

Everything side by side in one run, on the 41 s live source (the first 30 s of
multilingual.mp3, 1 s of silence, jfk.flac; tests/realmodel.py):

1. Step time: one buffer decoded the way the realtime lane did before (faster-whisper's
   ``transcribe`` with word timestamps, in this process) against ``decode_buffers`` with
   its features / encode / generate / align breakdown, at 2, 5, 10 and 20 s buffers, and
   a batch of 4 buffers of 10 s.
2. Accuracy and latency on the production topology (daphne + ``runworker realtime`` +
   ``qcluster`` on PostgreSQL and Redis, tiny.en on both lanes, ``--threads`` each): the
   file streamed at real time; first partial, final lag per word p50/p95, live WER
   against the reference, and the same file as a batch job (its WER); finals whose text
   lies in silence or is a known hallucination phrase.
3. Sessions per worker: 1, 2, 4, 8 concurrent real-time streams, p95 final lag and WER
   for each, stepping sessions one after another (``SCRIBE_REALTIME_MAX_BATCH=1``) against
   decoding them as one batch (the default).

Targets: first partial <= 2.0 s, p95 final lag <= 3.0 s, live WER <= batch WER + 2
points, no final that is a hallucination on silence.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from realtime_latency import percentile, verdict

TARGET_FIRST_PARTIAL_S = 2.0
TARGET_P95_S = 3.0
TARGET_WER_POINTS = 2.0
SILENCE_PAD_S = 0.3  # a final this far inside the silence gap is not speech


def step_breakdown(model_dir: Path, source: Path, threads: int) -> None:
    """Section 1: the old per-step decode against the batched one, in this process."""
    from transcription.engine import BufferRequest, decode_buffers, model_manager
    from transcription.engine.audio import decode_all

    model = model_manager.get(
        str(model_dir), models_dir=model_dir.parent, offline=True, cpu_threads=threads
    )
    audio = decode_all(source)
    print(f"\n1. step time, tiny.en int8 on the CPU, {threads} threads (median of 5)")
    print(f"{'buffer':>8}  {'before':>8}  {'after':>8}  features  encode  generate  align")
    for seconds in (2, 5, 10, 20):
        buffer = audio[: seconds * 16000]

        def before(buffer=buffer) -> None:
            segments, _ = model.whisper.transcribe(
                buffer,
                language="en",
                beam_size=1,
                word_timestamps=True,
                vad_filter=False,
                condition_on_previous_text=False,
                temperature=0.0,
                without_timestamps=True,
            )
            list(segments)

        old = _median_s(before)
        runs = [decode_buffers(model, [BufferRequest(buffer, language="en")])[0] for _ in range(5)]
        timings = sorted((r.timings for r in runs), key=lambda t: t.total_s)[2]
        print(
            f"{seconds:>6} s  {old:>8.3f}  {timings.total_s:>8.3f}  {timings.features_s:>8.3f}"
            f"  {timings.encode_s:>6.3f}  {timings.generate_s:>8.3f}  {timings.align_s:>5.3f}"
        )
    batch = [BufferRequest(audio[i * 16000 : (i + 10) * 16000], language="en") for i in range(4)]
    batched = sorted(
        (decode_buffers(model, batch)[0].timings for _ in range(3)), key=lambda t: t.total_s
    )[1]
    print(
        f"batch of 4 x 10 s: {batched.total_s:.3f} s ({batched.total_s / 4:.3f} s a session;"
        f" encode {batched.encode_s:.3f}, generate {batched.generate_s:.3f}, align "
        f"{batched.align_s:.3f})"
    )


def _median_s(func) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def analyse(run, reference: str, speech: tuple[tuple[float, float], ...]) -> dict:
    """First partial, final lag per word, WER and finals in silence of one stream."""
    from glossary.flags import DEFAULT_HALLUCINATIONS, hallucination_matcher
    from glossary.metrics import wer

    matcher = hallucination_matcher([p for ps in DEFAULT_HALLUCINATIONS.values() for p in ps])
    partials = [e for e in run.events if e["type"] == "partial"]
    finals = [e for e in run.events if e["type"] == "final"]
    lags = [e["at"] - w["end"] for e in finals for w in e["segment"]["words"]]
    text = " ".join(e["segment"]["text"] for e in finals)
    in_silence = [
        e["segment"]["text"]
        for e in finals
        if matcher(e["segment"]["text"])
        or not any(
            e["segment"]["start"] < b - SILENCE_PAD_S and e["segment"]["end"] > a + SILENCE_PAD_S
            for a, b in speech
        )
    ]
    ready = next((e["at"] for e in run.events if e["type"] == "ready"), float("nan"))
    return {
        "ready_s": ready,
        "first_partial_s": partials[0]["at"] if partials else float("nan"),
        "p50": percentile(lags, 0.5),
        "p95": percentile(lags, 0.95),
        "wer": 100 * wer(reference, text),
        "finals": len(finals),
        "in_silence": in_silence,
        "errors": [(e.get("code"), e.get("message")) for e in run.errors],
        "close_code": run.close_code,
        "text": text,
    }


def stream_many(stack, source: Path, sessions: int) -> list:
    """``sessions`` concurrent real-time streams of ``source``; their runs."""
    from realtime.client import stream_file

    url = f"ws://127.0.0.1:{stack.port}/v1/stream"

    async def all_streams():
        return await asyncio.gather(
            *(
                stream_file(url, stack.key, source, options={"language": "en"})
                for _ in range(sessions)
            )
        )

    return asyncio.run(all_streams())


def batch_wer(stack, client, source: Path, reference: str) -> float:
    from glossary.metrics import wer

    with source.open("rb") as handle:
        response = client.post(
            "/v1/jobs",
            files={"file": (source.name, handle)},
            data={"options": json.dumps({"language": "en"})},
        )
    response.raise_for_status()
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.5)
    result = client.get(f"/v1/jobs/{job_id}/result?format=json").json()
    return 100 * wer(reference, result["text"])


def run_stack(tmp: Path, model_dir: Path, threads: int, redis_db: int, **env: str):
    from tests.e2e.stack import Stack

    stack = Stack(
        tmp,
        model_dir,
        batch_workers=True,
        realtime_worker=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        SCRIBE_WORKERS="1",
        SCRIBE_CPU_THREADS=str(threads),
        SCRIBE_REALTIME_MAX_SESSIONS="8",
        **env,
    )
    return stack


def wait_ready(stack, timeout_s: float = 120) -> None:
    """Until the realtime worker has loaded and measured its model (its log says so)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "ready in" in stack.log("runworker"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the realtime worker did not warm up: {stack.log('runworker')}")


def main_real(args, tmp: Path) -> int:
    from tests.realmodel import (
        LIVE_REFERENCE,
        LIVE_SOURCE_SPEECH_S,
        live_source,
        missing_real_model_message,
        real_model_dir,
    )

    model_dir = real_model_dir()
    if model_dir is None:
        print(missing_real_model_message())
        return 2
    os.environ.setdefault("SCRIBE_LOG_LEVEL", "INFO")
    source = live_source(tmp / "live.wav")
    print(f"model=tiny.en ({model_dir}) threads={args.threads} source=41 s live source")
    step_breakdown(model_dir, source, args.threads)

    print("\n2. one stream at real time, production topology (PostgreSQL + Redis)")
    with (
        run_stack(
            tmp / "stack", model_dir, args.threads, args.redis_db, SCRIBE_LOG_LEVEL="INFO"
        ) as stack,
        stack.client() as client,
    ):
        stack.key = stack.manage(
            "create_api_key", "--owner", "bench", "--scopes", "stream", "transcribe"
        ).strip()
        client.headers["Authorization"] = f"Bearer {stack.key}"
        wait_ready(stack)
        live = analyse(stream_many(stack, source, 1)[0], LIVE_REFERENCE, LIVE_SOURCE_SPEECH_S)
        batch = batch_wer(stack, client, source, LIVE_REFERENCE)
    print(
        f"ready {live['ready_s']:.2f} s, first partial {live['first_partial_s']:.2f} s, "
        f"final lag p50 {live['p50']:.2f} s p95 {live['p95']:.2f} s, {live['finals']} finals"
    )
    print(f"live WER {live['wer']:.1f} %, batch WER {batch:.1f} % (same file, batch job)")
    print(f"live text: {live['text']}")
    for code, message in live["errors"]:
        print(f"error event: {code}: {message}")
    print(f"finals in silence or known hallucinations: {live['in_silence'] or 'none'}")

    sweep: dict[str, dict[int, list[dict]]] = {}
    if args.sessions:
        counts = [int(n) for n in args.sessions.split(",")]
        print("\n3. concurrent real-time streams per worker: p95 final lag (s) / mean WER (%)")
        for mode, max_batch in (("sequential", "1"), ("batched", "8")):
            sweep[mode] = {}
            with run_stack(
                tmp / f"sweep-{mode}",
                model_dir,
                args.threads,
                args.redis_db,
                SCRIBE_REALTIME_MAX_BATCH=max_batch,
                SCRIBE_LOG_LEVEL="INFO",
            ) as stack:
                stack.key = stack.manage(
                    "create_api_key", "--owner", "bench", "--scopes", "stream"
                ).strip()
                wait_ready(stack)
                for count in counts:
                    runs = stream_many(stack, source, count)
                    sweep[mode][count] = [
                        analyse(r, LIVE_REFERENCE, LIVE_SOURCE_SPEECH_S) for r in runs
                    ]
        print(f"{'sessions':>8}  {'sequential':>16}  {'batched':>16}")
        for count in counts:
            cells = []
            for mode in ("sequential", "batched"):
                results = sweep[mode][count]
                lags = max(r["p95"] for r in results)
                mean_wer = statistics.mean(r["wer"] for r in results)
                cells.append(f"{lags:6.2f} / {mean_wer:5.1f}")
            print(f"{count:>8}  {cells[0]:>16}  {cells[1]:>16}")

    print()
    print(
        f"first_partial_s={live['first_partial_s']:.2f} (target <= {TARGET_FIRST_PARTIAL_S}) "
        f"{verdict(live['first_partial_s'] <= TARGET_FIRST_PARTIAL_S)}"
    )
    print(
        f"p95_final_lag_s={live['p95']:.2f} (target <= {TARGET_P95_S}) "
        f"{verdict(live['p95'] <= TARGET_P95_S)}"
    )
    print(
        f"live_wer={live['wer']:.1f} batch_wer={batch:.1f} (target live <= batch + "
        f"{TARGET_WER_POINTS:g}) {verdict(live['wer'] <= batch + TARGET_WER_POINTS)}"
    )
    print(
        f"hallucinated_finals={len(live['in_silence'])} (target 0) "
        f"{verdict(not live['in_silence'])}"
    )
    return 0
