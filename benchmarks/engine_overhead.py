#!/usr/bin/env python
"""Time overhead of scribe's engine over a bare faster-whisper call on the same file.

scribe's ``transcription.engine.pipeline.transcribe`` streams the file, cuts it into
windows of ``WINDOW_S`` (300 s) at pauses, runs Silero VAD per window and decodes each
window's speech with faster-whisper. This benchmark compares its wall time with a bare
``WhisperModel.transcribe(path, vad_filter=True, ...)`` followed by ``list(segments)``:

- the same file: ~6 min of ../shared/audio/jfk.flac repeated with short silences, written
  as a 16 kHz mono WAV into a temp dir (two scribe windows);
- the same model instance: the random-weight test model with Whisper tiny's dimensions,
  loaded once through ``model_manager.get`` (CPU, int8, 2 threads); the bare call uses its
  ``LoadedModel.whisper``;
- the same options: beam size 5, no word timestamps, scribe's VAD parameters with
  ``max_speech_duration_s=30``, faster-whisper's default temperatures and conditioning.

Each path is warmed up once, then they alternate for ``--rounds`` rounds. It prints the
median time of each and ``ratio=`` scribe/bare against a target of <= 1.05.

Run from the repository root (no network, no Django settings needed):

    .venv/bin/python benchmarks/engine_overhead.py
    .venv/bin/python benchmarks/engine_overhead.py --rounds 5 --minutes 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine_memory import REPO_ROOT, require_speech_clip, synthesize_speech_wav

TARGET_RATIO = 1.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="length of the test file")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each path")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    args = parser.parse_args()
    if args.minutes < 5:
        parser.error("--minutes must be at least 5: the file must span more than one window")

    require_speech_clip()
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(REPO_ROOT))
    from faster_whisper.vad import VadOptions

    from transcription.engine.manager import model_manager
    from transcription.engine.pipeline import WINDOW_S, transcribe
    from transcription.engine.testmodel import build_test_model
    from transcription.engine.types import TranscribeOptions

    wall_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scribe-bench-overhead-") as tmp:
        tmp_dir = Path(tmp)
        wav = synthesize_speech_wav(tmp_dir / "speech.wav", args.minutes * 60)
        model_dir = build_test_model(tmp_dir / "tiny", size="tiny")
        model = model_manager.get(
            str(model_dir),
            models_dir=tmp_dir,
            offline=True,
            device="cpu",
            compute_type="int8",
            cpu_threads=args.threads,
        )
        options = TranscribeOptions()
        params = options.vad_parameters
        vad = VadOptions(
            threshold=params.threshold,
            min_speech_duration_ms=params.min_speech_duration_ms,
            min_silence_duration_ms=params.min_silence_duration_ms,
            speech_pad_ms=params.speech_pad_ms,
            max_speech_duration_s=30,
        )

        def bare() -> str:
            segments, _info = model.whisper.transcribe(
                str(wav),
                vad_filter=True,
                vad_parameters=vad,
                beam_size=options.beam_size,
                word_timestamps=options.word_timestamps,
            )
            return f"{len(list(segments))} segments"

        def scribe() -> str:
            transcript = transcribe(wav, model, options)
            return f"{len(transcript.segments)} segments, {transcript.metrics.windows} windows"

        times: dict[str, list[float]] = {"bare": [], "scribe": []}
        for round_ in range(args.rounds + 1):  # round 0 is the warm-up
            line = []
            for name, run in (("bare", bare), ("scribe", scribe)):
                started = time.perf_counter()
                summary = run()
                seconds = time.perf_counter() - started
                if round_:
                    times[name].append(seconds)
                    line.append(f"{name}={seconds:.2f} s")
                else:
                    print(f"warm-up {name}: {seconds:.2f} s, {summary}")
            if round_:
                print(f"round {round_}: {' '.join(line)}")

    bare_s = statistics.median(times["bare"])
    scribe_s = statistics.median(times["scribe"])
    ratio = scribe_s / bare_s
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(
        f"audio_duration_s={args.minutes * 60:.0f} window_s={WINDOW_S:.0f} "
        f"threads={args.threads} rounds={args.rounds}"
    )
    print(f"median_bare_s={bare_s:.3f} median_scribe_s={scribe_s:.3f}")
    print(f"ratio={ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    print(f"wall_time_s={time.perf_counter() - wall_started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
