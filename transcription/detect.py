"""Speech presence: whether a short clip holds speech, and where, by the VAD alone.

No Whisper runs: Silero VAD (loaded once per process by faster-whisper) with the live
lane's settings, so a client can ask before each chunk it would send. The clip comes as a
file in any format the engine decodes, or as raw PCM as a live client has it
(realtime.audio's encodings and rates). See docs/api.md, "Speech presence".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings

from realtime.audio import ENCODINGS, FrameDecoder
from transcription.engine import (
    SAMPLE_RATE_HZ,
    MediaError,
    SpeechRegion,
    speech_regions,
    stream_audio,
)
from transcription.errors import ClipTooLongError

DECODE_CHUNK_S = 1.0  # a file is decoded this much at a time, so a long one stops early
# What FFmpeg reads of a file to find its streams: 4 KB instead of 5 MB (the whole of a
# clip, decoded: most of the cost of opening a 3 s WAV). WAV, FLAC, MP3, AAC, Opus in Ogg
# and WebM, MPEG-TS and MP4 decode the same either way (docs/benchmarks.md).
PROBE_BYTES = 4096
READ_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Detection:
    """What the VAD heard in a clip: its speech regions in seconds from its start."""

    duration_s: float
    regions: tuple[SpeechRegion, ...]

    @property
    def speech(self) -> bool:
        return bool(self.regions)

    @property
    def speech_s(self) -> float:
        return round(sum(r.end - r.start for r in self.regions), 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "speech": self.speech,
            "speech_sec": self.speech_s,
            "duration_sec": self.duration_s,
            "regions": [{"start": r.start, "end": r.end} for r in self.regions],
        }


def speech_detect(*, audio: np.ndarray) -> Detection:
    """Find the speech in ``audio`` (16 kHz mono float32)."""
    return Detection(
        duration_s=round(audio.shape[0] / SAMPLE_RATE_HZ, 3),
        regions=tuple(
            SpeechRegion(round(start, 3), round(end, 3)) for start, end in speech_regions(audio)
        ),
    )


def clip_from_file(*, path: Path, name: str) -> np.ndarray:
    """Decode the file at ``path`` (called ``name`` in errors) to 16 kHz mono float32.

    Raises MediaError (not audio: 415) or ClipTooLongError, decoding no more than the limit.
    """
    try:
        return _decoded(path, name, PROBE_BYTES)
    except MediaError:
        # Streams that show only further in (a large tag first, say): FFmpeg's full probe.
        return _decoded(path, name, None)


def _decoded(path: Path, name: str, probe_bytes: int | None) -> np.ndarray:
    limit_s = settings.SCRIBE_DETECT_MAX_S
    limit = limit_s * SAMPLE_RATE_HZ
    chunks: list[np.ndarray] = []
    decoded = 0
    # A second at a time: a file past the limit is refused after the limit's worth.
    for chunk in stream_audio(path, chunk_s=DECODE_CHUNK_S, name=name, probe_bytes=probe_bytes):
        decoded += chunk.shape[0]
        if decoded > limit:
            raise ClipTooLongError(limit_s)
        chunks.append(chunk)
    return np.concatenate(chunks)


def pcm_limit_bytes(*, encoding: str, sample_rate: int) -> int:
    """The largest raw body the limit lets through at this encoding and rate."""
    return math.ceil(settings.SCRIBE_DETECT_MAX_S * sample_rate) * ENCODINGS[encoding][0].itemsize


def pcm_body_read(*, stream: BinaryIO, declared_bytes: int | None, limit_bytes: int) -> bytes:
    """Read a raw body of at most ``limit_bytes``; raise ClipTooLongError past it (before
    reading when Content-Length says so)."""
    if declared_bytes is not None and declared_bytes > limit_bytes:
        raise ClipTooLongError(settings.SCRIBE_DETECT_MAX_S)
    parts: list[bytes] = []
    received = 0
    while piece := stream.read(READ_CHUNK_BYTES):
        received += len(piece)
        if received > limit_bytes:
            raise ClipTooLongError(settings.SCRIBE_DETECT_MAX_S)
        parts.append(piece)
    return b"".join(parts)


def clip_from_pcm(*, body: bytes, encoding: str, sample_rate: int) -> np.ndarray:
    """Decode raw PCM as the live lane decodes a frame (resampled to 16 kHz)."""
    return FrameDecoder(encoding, sample_rate).decode(body)
