#!/usr/bin/env python
"""What a voice agent waits for, on Deepgram's /v1/listen beside scribe's /v1/stream.

One run, one stack (daphne + ``runworker realtime`` on PostgreSQL and Redis, the real
tiny.en on ``--threads`` CPU threads: ``realtime_real.run_stack``), the 41 s live source
(tests/realmodel.py), each session at real time in 50 ms frames, one after another:

A. ``/v1/stream`` (scribe's protocol, ``realtime.client.stream_file``);
B. ``/v1/listen`` through Deepgram's SDK as Pipecat drives it: ``Finalize`` sent 200 ms
   after each end of speech that VAD finds in the source (Silero, the live lane's
   settings), ``interim_results``, ``endpointing``;
C. ``/v1/listen`` with endpointing alone (no Finalize): the ``speech_final`` a LiveKit
   agent waits for.

Figures:
- ``Finalize``→its ``from_finalize`` result, p50/p95/max (target p95 <= 0.5 s);
- ``speech_final`` after the last word (its end in the audio, sent at real time), p50/p95/
  max (target: endpointing + 0.5 s);
- interim cadence: the gaps between hypotheses (partials, interims, finals) while speech
  goes on (within one stretch of speech VAD finds, and half a second after it for the
  last results to arrive; not across a pause), p50/p95 (target p95 <= 0.5 s), and the
  first hypothesis after the first word (target <= 1.0 s), for each protocol;
- what the cadence costs: each session's decode time ÷ audio (its job's summary), WER.

    .venv/bin/python benchmarks/deepgram_latency.py --threads 2 [--endpointing-ms 300] [--dump F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from engine_memory import django_ready
from realtime_latency import job_ratio, percentile, verdict
from realtime_real import run_stack, wait_ready

TARGET_FINALIZE_P95_S = 0.5
TARGET_SPEECH_FINAL_OVER_S = 0.5
TARGET_CADENCE_P95_S = 0.5
TARGET_FIRST_S = 1.0
ARRIVAL_S = 0.5  # a hypothesis this soon after a stretch of speech still belongs to it
FINALIZE_AFTER_S = 0.2  # Pipecat's: Finalize this long after its VAD's end of speech


def hypothesis_gaps(times: list[float], regions: list[tuple[float, float]]) -> list[float]:
    """Gaps between consecutive hypotheses that both arrived during one stretch of speech
    (VAD: pauses under 0.3 s bridged), or within ``ARRIVAL_S`` after it: a gap across a
    pause, where the speaker stopped and the utterance was final, is not one."""
    gaps = []
    for start, end in regions:
        inside = [t for t in times if start <= t <= end + ARRIVAL_S]
        gaps += [b - a for a, b in zip(inside, inside[1:], strict=False)]
    return gaps


def stream_session(stack, source: Path) -> dict:
    from realtime.client import stream_file

    url = f"ws://127.0.0.1:{stack.port}/v1/stream"
    run = asyncio.run(stream_file(url, stack.key, source, chunk_ms=50, options={"language": "en"}))
    hypotheses = [e for e in run.events if e["type"] in ("partial", "final")]
    closed = [e for e in run.events if e["type"] == "closed"]
    return {
        "times": [e["at"] for e in hypotheses],
        "text": " ".join(e["segment"]["text"] for e in run.events if e["type"] == "final"),
        "job_id": closed[-1]["job_id"] if closed else None,
    }


def listen_session(stack, audio, ends: list[float], *, finalize: bool, endpointing_ms: int):
    from tests.e2e.deepgram_client import play

    at = {end + FINALIZE_AFTER_S: "Finalize" for end in ends} if finalize else {}
    run = asyncio.run(
        play(
            stack.port,
            stack.key,
            audio,
            at=at,
            model="nova-3",
            language="en-US",
            encoding="linear16",
            sample_rate=16000,
            interim_results="true",
            smart_format="true",
            endpointing=endpointing_ms,
            utterance_end_ms=1000,
            vad_events="true",
        )
    )
    finalize_delays = []
    for sent_at, what in run.sent:
        if what != "Finalize":
            continue
        answers = [t for t, m in run.received if t >= sent_at and getattr(m, "from_finalize", 0)]
        finalize_delays.append(answers[0] - sent_at if answers else float("inf"))
    speech_final_delays, last_word_end = [], 0.0
    for received_at, message in run.received:
        if getattr(message, "type", None) != "Results" or not message.is_final:
            continue
        words = message.channel.alternatives[0].words
        if words:
            last_word_end = words[-1].end
        if message.speech_final:
            speech_final_delays.append(received_at - last_word_end)
    hypotheses = [
        t
        for t, m in run.received
        if getattr(m, "type", None) == "Results" and m.channel.alternatives[0].transcript
    ]
    metadata = run.of_type("Metadata")
    return {
        "times": hypotheses,
        "text": run.transcript(),
        "job_id": metadata[0].request_id if metadata else None,
        "finalize": finalize_delays,
        "speech_final": speech_final_delays,
    }


def describe(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
        f"max {max(values):.2f} s (n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the worker")
    parser.add_argument("--endpointing-ms", type=int, default=300)
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--dump", type=Path, help="write each session's hypothesis times here")
    args = parser.parse_args()
    django_ready()
    from glossary.metrics import wer
    from tests.realmodel import LIVE_REFERENCE, live_source, missing_real_model_message
    from tests.realmodel import real_model_dir as find_real_model
    from transcription.engine import speech_regions
    from transcription.engine.audio import decode_all

    model_dir = find_real_model()
    if model_dir is None:
        print(missing_real_model_message())
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = live_source(tmp / "live.wav")
        audio = decode_all(source)
        regions = speech_regions(audio)
        ends = [end for _, end in regions]
        first_word = regions[0][0]
        print(f"tiny.en, {args.threads} threads; {len(regions)} stretches of speech (VAD)")
        with run_stack(
            tmp / "stack", model_dir, args.threads, args.redis_db, SCRIBE_LOG_LEVEL="INFO"
        ) as stack:
            stack.key = stack.manage(
                "create_api_key", "--owner", "bench", "--scopes", "stream", "transcribe"
            ).strip()
            wait_ready(stack)
            runs = {
                "/v1/stream": stream_session(stack, source),
                "/v1/listen + Finalize": listen_session(
                    stack, audio, ends, finalize=True, endpointing_ms=args.endpointing_ms
                ),
                "/v1/listen endpointing": listen_session(
                    stack, audio, ends, finalize=False, endpointing_ms=args.endpointing_ms
                ),
            }
            with stack.client() as client:
                client.headers["Authorization"] = f"Bearer {stack.key}"
                ratios = {name: job_ratio(client, run["job_id"])[0] for name, run in runs.items()}
    if args.dump:
        args.dump.write_text(json.dumps({"regions": regions, "runs": runs}, default=str))
    ok = True
    for name, run in runs.items():
        gaps = hypothesis_gaps(run["times"], regions)
        first = (run["times"][0] - first_word) if run["times"] else float("inf")
        print(f"\n{name}")
        print(f"  first hypothesis {first:.2f} s after the first word (target <= 1.0 s)")
        print(f"  cadence while speaking: {describe(gaps)}")
        print(
            f"  decode/audio {ratios[name]:.2f}, WER {100 * wer(LIVE_REFERENCE, run['text']):.1f} %"
        )
        ok &= first <= TARGET_FIRST_S and percentile(gaps, 0.95) <= TARGET_CADENCE_P95_S
        if "finalize" in run and run["finalize"]:
            p95 = percentile(run["finalize"], 0.95)
            print(
                f"  Finalize -> from_finalize: {describe(run['finalize'])}  {verdict(p95 <= 0.5)}"
            )
            ok &= p95 <= TARGET_FINALIZE_P95_S
        if "speech_final" in run and name.endswith("endpointing"):
            limit = args.endpointing_ms / 1000 + TARGET_SPEECH_FINAL_OVER_S
            p95 = percentile(run["speech_final"], 0.95)
            print(
                f"  speech_final after the last word: {describe(run['speech_final'])}  "
                f"{verdict(p95 <= limit)} (target <= {limit:.2f} s)"
            )
            ok &= p95 <= limit
    print(f"\noverall: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
