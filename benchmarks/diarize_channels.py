#!/usr/bin/env python
"""Cost of ``diarize: "channels"``: the same stereo file as a job with and without it.

A job with ``"diarize": "channels"`` transcribes each channel on its own (VAD, then
decoding of that channel's speech) and labels segments by channel; without it the job
transcribes the downmix once. Both run through the real job service
(``services.job_create`` then ``runner.job_process``, as a worker does) on the embedded
defaults (SQLite and local files in a temp dir), with the same model and settings.

The file: ``../shared/audio/stereo_diarization.wav`` (5 s, a different speaker on each
channel) repeated ``--repeat`` times with a second of silence between, as a 16 kHz stereo
WAV. The model: Whisper tiny.en from the realmodel extra (real speech, so VAD and decoding
do real work), CPU int8, ``--threads`` threads. After one warm-up job of each kind they
alternate for ``--rounds`` rounds; it prints the median processing time of each (the
worker's started → finished) and ``ratio=`` channels / plain.

    .venv/bin/python benchmarks/diarize_channels.py
    .venv/bin/python benchmarks/diarize_channels.py --repeat 12 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIP = REPO_ROOT.parent / "shared" / "audio" / "stereo_diarization.wav"


def write_call(path: Path, repeat: int) -> float:
    """Write the clip ``repeat`` times with 1 s pauses as a stereo WAV; return its seconds."""
    import av

    with av.open(str(CLIP)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        packed = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    clip = packed.reshape(-1, channels)
    pause = np.zeros((16000, channels), dtype=clip.dtype)
    call = np.concatenate([part for _ in range(repeat) for part in (clip, pause)])
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="stereo")
        interleaved = call.reshape(1, -1).copy()
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return call.shape[0] / 16000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=6, help="copies of the 5 s clip")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each kind")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    args = parser.parse_args()
    if not CLIP.is_file():
        print(f"{CLIP} is absent: check out ../shared beside the repository.", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO_ROOT))
    from tests.realmodel import INSTALL_HINT, real_model_dir

    model = real_model_dir()
    if model is None:
        print(f"Whisper tiny.en is not installed: {INSTALL_HINT}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="scribe-diarize-bench-"))
    os.environ.update(
        HF_HUB_OFFLINE="1",
        DJANGO_SETTINGS_MODULE="scribe.settings",
        SCRIBE_SQLITE_PATH=str(work / "db.sqlite3"),
        SCRIBE_MEDIA_ROOT=str(work / "media"),
        SCRIBE_MODELS_DIR=str(work / "models"),
        SCRIBE_BATCH_MODEL=str(model),
        SCRIBE_DEVICE="cpu",
        SCRIBE_CPU_THREADS=str(args.threads),
        SCRIBE_LANES="batch",
        SCRIBE_LOG_LEVEL="ERROR",
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.files.uploadedfile import TemporaryUploadedFile
    from django.core.management import call_command

    from accounts.services import api_key_create
    from transcription import runner, services
    from transcription.models import Job

    call_command("migrate", verbosity=0)
    owner = api_key_create(owner_name="bench", scopes=["transcribe"])[0].owner
    call = work / "call.wav"
    seconds = write_call(call, args.repeat)

    def run(options: dict) -> float:
        upload = TemporaryUploadedFile("call.wav", "audio/wav", call.stat().st_size, None)
        upload.write(call.read_bytes())
        upload.flush()
        try:
            job = services.job_create(owner=owner, upload=upload, options=options)
        finally:
            upload.close()
        runner.job_process(job_id=str(job.id))
        job.refresh_from_db()
        if job.status != Job.Status.COMPLETED:
            raise SystemExit(f"job {job.id} {job.status}: {job.error_message}")
        return (job.finished_at - job.started_at).total_seconds()

    kinds = {"plain": {"language": "en"}, "channels": {"language": "en", "diarize": "channels"}}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for options in kinds.values():
        run(options)  # warm-up: model load, first VAD
    for n in range(args.rounds):
        for kind, options in kinds.items():
            times[kind].append(run(options))
            print(f"round {n + 1} {kind}: {times[kind][-1]:.2f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    plain, channels = (statistics.median(times[k]) for k in ("plain", "channels"))
    print(f"file: {seconds:.1f} s stereo ({args.repeat} x {CLIP.name}); model tiny.en, cpu int8")
    for kind in kinds:
        print(f"{kind}: median {statistics.median(times[kind]):.2f} s of {times[kind]}")
    print(f"ratio={channels / plain:.3f} (channels / plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
