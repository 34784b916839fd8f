#!/usr/bin/env python
"""Peak memory of the transcription engine: 10 minutes of audio against 2 hours.

The engine streams a file and decodes it in windows of a few minutes, so its peak memory
should not depend on the file's length. This benchmark checks that with real speech:

1. it synthesizes two 16 kHz mono WAV files (10 min and 2 h by default) by repeating
   ../shared/audio/jfk.flac with a short silence between repeats, writing them as a
   stream into a temp dir;
2. it builds the random-weight "micro" test model once;
3. it transcribes each file in a separate child process, through the real engine
   (``model_manager.get`` then ``pipeline.transcribe``) on the CPU with int8 and 2 threads,
   and reads the child's peak RSS (VmHWM) at the end, so each figure is that run's own;
4. during the long run, a thread in the child samples the RSS every second, and the RSS
   at 25/50/75/100 % of the run is printed to show it does not grow with the file.

It prints, for each run, the audio duration, processing time and peak RSS, then
``ratio_2h_over_10min=`` (long peak / short peak) against a target of <= 1.15.

Run from the repository root (no network, no Django settings needed):

    .venv/bin/python benchmarks/engine_memory.py
    .venv/bin/python benchmarks/engine_memory.py --short-min 2 --long-min 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"
SPEECH_CLIP = SHARED_AUDIO / "jfk.flac"
SAMPLE_RATE_HZ = 16000
GAP_S = 1.0  # silence between two repeats of the clip
TARGET_RATIO = 1.15
RESULT_PREFIX = "RESULT "


# --- audio -----------------------------------------------------------------------------


def django_ready() -> None:
    """What the stack benchmarks need: the speech clip, no network, Django set up."""
    require_speech_clip()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scribe.settings")
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def require_speech_clip() -> None:
    """Exit with a clear message when the real speech clip is not there."""
    if not SPEECH_CLIP.is_file():
        sys.exit(
            f"Speech clip {SPEECH_CLIP} not found: this benchmark needs the shared audio "
            "clips in ../shared/audio next to the repository."
        )


def load_clip_s16(path: Path) -> bytes:
    """Decode ``path`` to 16 kHz mono signed 16-bit PCM bytes (the clip is short)."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
    parts: list[bytes] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [out.to_ndarray().tobytes() for out in resampler.resample(frame)]
        parts += [out.to_ndarray().tobytes() for out in resampler.resample(None)]
    return b"".join(parts)


def synthesize_speech_wav(path: Path, duration_s: float, *, gap_s: float = GAP_S) -> Path:
    """Write ``duration_s`` seconds of jfk.flac repeated with ``gap_s`` of silence between
    repeats to ``path`` as a 16 kHz mono 16-bit WAV, one repeat at a time."""
    require_speech_clip()
    unit = load_clip_s16(SPEECH_CLIP) + bytes(2 * int(gap_s * SAMPLE_RATE_HZ))
    remaining = 2 * int(duration_s * SAMPLE_RATE_HZ)  # bytes still to write
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        while remaining > 0:
            piece = unit[:remaining]
            out.writeframes(piece)
            remaining -= len(piece)
    return path


# --- child: one transcription, measured --------------------------------------------------


def _status_kb(field: str) -> int | None:
    """Return a field of /proc/self/status (VmRSS, VmHWM) in kB, or None off Linux."""
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else float("nan")


def _peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:  # ru_maxrss is in kB on Linux
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


class RssSampler(threading.Thread):
    """Record (seconds since start, RSS in MB) every ``interval_s`` until stopped."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()
        self._t0 = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter() - self._t0, _rss_mb()))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_child(wav: Path, model_dir: Path, models_dir: Path, sample_s: float) -> None:
    """Load the model through the engine, transcribe ``wav``, print one JSON result line."""
    sys.path.insert(0, str(REPO_ROOT))
    from transcription.engine.manager import model_manager
    from transcription.engine.pipeline import transcribe
    from transcription.engine.types import TranscribeOptions

    model = model_manager.get(
        str(model_dir),
        models_dir=models_dir,
        offline=True,
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )
    rss_loaded = _rss_mb()
    sampler = RssSampler(sample_s)
    sampler.start()
    started = time.perf_counter()
    transcript = transcribe(wav, model, TranscribeOptions())
    elapsed = time.perf_counter() - started
    rss_end = _rss_mb()
    sampler.stop()
    sampler.samples.append((elapsed, rss_end))
    result = {
        "audio_duration_s": transcript.metrics.audio_duration_s,
        "processing_time_s": elapsed,
        "windows": transcript.metrics.windows,
        "segments": len(transcript.segments),
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": _peak_rss_mb(),
        "samples": sampler.samples,
        "django_imported": "django" in sys.modules,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- parent ------------------------------------------------------------------------------


def measure(wav: Path, model_dir: Path, models_dir: Path, sample_s: float) -> dict:
    """Run one transcription in a fresh interpreter and return its result."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the engine must not need Django
    command = [sys.executable, str(Path(__file__).resolve()), "--child"]
    command += [str(wav), str(model_dir), str(models_dir), "--sample-s", str(sample_s)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if done.returncode != 0:
        sys.exit(f"child failed ({done.returncode}) on {wav.name}:\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def rss_at(samples: list[list[float]], fraction: float) -> float:
    """Return the last RSS sample taken at or before ``fraction`` of the run."""
    end = samples[-1][0]
    eligible = [rss for t, rss in samples if t <= fraction * end]
    return eligible[-1] if eligible else samples[0][1]


def report(label: str, result: dict) -> None:
    duration = result["audio_duration_s"]
    elapsed = result["processing_time_s"]
    print(
        f"{label}: audio_duration_s={duration:.1f} processing_time_s={elapsed:.1f} "
        f"rtf={elapsed / duration:.4f} windows={result['windows']} "
        f"segments={result['segments']} rss_after_load_mb={result['rss_after_load_mb']:.1f} "
        f"peak_rss_mb={result['peak_rss_mb']:.1f} "
        f"django_imported={result['django_imported']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short-min", type=float, default=10.0, help="short file (minutes)")
    parser.add_argument("--long-min", type=float, default=120.0, help="long file (minutes)")
    parser.add_argument("--sample-s", type=float, default=1.0, help="RSS sampling interval")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # internal: one run
    args = parser.parse_args()

    if args.child:
        wav, model_dir, models_dir = (Path(p) for p in args.child)
        run_child(wav, model_dir, models_dir, args.sample_s)
        return 0

    require_speech_clip()
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(REPO_ROOT))
    from transcription.engine.testmodel import build_test_model

    wall_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scribe-bench-mem-") as tmp:
        tmp_dir = Path(tmp)
        model_dir = build_test_model(tmp_dir / "micro", size="micro")
        results = {}
        for label, minutes in (("short", args.short_min), ("long", args.long_min)):
            wav = synthesize_speech_wav(tmp_dir / f"{label}.wav", minutes * 60)
            results[label] = measure(wav, model_dir, tmp_dir, args.sample_s)
            wav.unlink()
            report(f"{label} ({minutes:g} min)", results[label])

    samples = results["long"]["samples"]
    quarters = " ".join(f"{p}%={rss_at(samples, p / 100):.1f}" for p in (25, 50, 75, 100))
    rss_values = [rss for _, rss in samples]
    print(
        f"long run RSS during transcription (MB): {quarters} "
        f"min={min(rss_values):.1f} max={max(rss_values):.1f} samples={len(samples)}"
    )
    ratio = results["long"]["peak_rss_mb"] / results["short"]["peak_rss_mb"]
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"ratio_2h_over_10min={ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    print(f"wall_time_s={time.perf_counter() - wall_started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
