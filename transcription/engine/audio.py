"""Read any audio or video file PyAV can decode as 16 kHz mono float32, in bounded chunks.

Nothing here holds a whole file in memory: ``stream_audio`` yields chunks of at most
``chunk_s`` seconds, so a 4-hour file costs the same memory as a 4-minute one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE_HZ = 16000
STREAM_CHUNK_S = 30.0


@dataclass(frozen=True)
class MediaInfo:
    path: str
    size_bytes: int
    container: str
    duration_s: float | None  # from the container; None when it does not say
    audio_codec: str
    sample_rate_hz: int
    channels: int
    has_video: bool


def _open(path: Path, name: str | Path | None = None, probe_bytes: int | None = None):
    """Open ``path``; errors call it ``name`` (an upload's own name, not its temp file).

    ``probe_bytes`` bounds what FFmpeg reads to learn the streams (5 MB by default, the
    whole of a short clip: most of the cost of opening one).
    """
    shown = name or path
    if not path.exists():
        raise _media_error(shown, "no such file")
    if path.is_dir():
        raise _media_error(shown, "it is a directory")
    if path.stat().st_size == 0:
        raise _media_error(shown, "the file is empty")
    try:
        options = {"probesize": str(probe_bytes)} if probe_bytes else {}
        return av.open(str(path), mode="r", metadata_errors="ignore", container_options=options)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise _media_error(shown, f"not an audio or video file FFmpeg can read ({exc})") from exc


def _media_error(path: str | Path, reason: str):
    from transcription.engine.errors import MediaError

    return MediaError(
        f"Cannot read {path}: {reason}. Send an audio or video file with a sound track."
    )


def probe(path: Path, *, name: str | None = None) -> MediaInfo:
    """Return container facts about ``path`` without decoding it; raise MediaError if unreadable.

    ``name`` is what errors call the file: an upload's own name, not the server's temp file.
    """
    from transcription.engine.errors import NoAudioStreamError

    path = Path(path)
    with _open(path, name) as container:
        if not container.streams.audio:
            raise NoAudioStreamError(
                f"{name or path} has no audio stream (container {container.format.name}): "
                "there is nothing to transcribe. Send a file with a sound track."
            )
        stream = container.streams.audio[0]
        duration_s = _claimed_duration_s(container, stream)
        return MediaInfo(
            path=str(path),
            size_bytes=path.stat().st_size,
            container=container.format.name,
            duration_s=duration_s,
            audio_codec=stream.codec_context.name,
            sample_rate_hz=stream.codec_context.sample_rate or 0,
            channels=stream.codec_context.channels or 0,
            has_video=bool(container.streams.video),
        )


def _claimed_duration_s(container, stream) -> float | None:
    """Return the duration the container states (None when it does not say)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def stream_audio(
    path: Path,
    *,
    chunk_s: float = STREAM_CHUNK_S,
    channel: int | None = None,
    name: str | None = None,
    probe_bytes: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the first audio stream of ``path`` as 16 kHz mono float32 chunks.

    Chunks are at most ``chunk_s`` seconds long (the last may be shorter). Undecodable
    packets in the middle of a file are skipped, as faster-whisper's own decoder does;
    a file with no decodable audio at all raises MediaError. ``channel`` (0-based) takes
    that one channel instead of the downmix of all. ``name`` is what errors call the file
    (an upload's own name, not the server's temporary file); ``probe_bytes`` bounds what is
    read to find its streams (``_open``).
    """
    path = Path(path)
    shown = name or path
    chunk_samples = int(chunk_s * SAMPLE_RATE_HZ)
    pending: list[np.ndarray] = []
    pending_samples = 0
    produced = 0
    with _open(path, name, probe_bytes) as container:
        if not container.streams.audio:
            from transcription.engine.errors import NoAudioStreamError

            raise NoAudioStreamError(
                f"{shown} has no audio stream: there is nothing to transcribe."
            )
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        claimed_s = _claimed_duration_s(container, stream)
        channels = stream.codec_context.channels or 1
        if channel is not None and not 0 <= channel < channels:
            raise _media_error(shown, f"it has {channels} channel(s), no channel {channel}")
        # s16 as Whisper's own loader (ffmpeg -ac 1 -f s16le) does: FFmpeg's downmix to s16
        # keeps stereo within full scale, while a float downmix can exceed it. One channel
        # is taken from the packed (interleaved) s16 frames, untouched by a downmix.
        layout = "mono" if channel is None else stream.codec_context.layout.name
        resampler = av.AudioResampler(format="s16", layout=layout, rate=SAMPLE_RATE_HZ)
        try:
            for frame in itertools.chain(_decoded_frames(container, stream), [None]):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    if channel is not None:
                        samples = samples.reshape(-1, channels)[:, channel]
                    samples = samples.astype(np.float32) / 32768.0
                    pending.append(samples)
                    pending_samples += samples.shape[0]
                    while pending_samples >= chunk_samples:
                        joined = np.concatenate(pending)
                        yield joined[:chunk_samples]
                        produced += chunk_samples
                        rest = joined[chunk_samples:]
                        pending = [rest] if rest.size else []
                        pending_samples = rest.shape[0]
        except av.error.FFmpegError as exc:
            raise _media_error(
                shown, f"decoding failed after {produced / SAMPLE_RATE_HZ:.1f} s ({exc})"
            ) from exc
    if pending_samples:
        yield np.concatenate(pending)
        produced += pending_samples
    if produced == 0:
        if claimed_s:
            raise _media_error(
                shown,
                f"no audio could be decoded from it, though its container says it lasts "
                f"{claimed_s:.1f} s: the file looks truncated",
            )
        raise _media_error(shown, "no audio could be decoded from it")


def _decoded_frames(container, stream) -> Iterator[av.AudioFrame]:
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            continue  # a damaged packet: skip it, keep the rest of the file
        for frame in frames:
            frame.pts = None  # the resampler must not reorder on broken timestamps
            yield frame


def decode_all(path: Path) -> np.ndarray:
    """Return a whole (short) file as one array: for tests and clips, not for long files."""
    return np.concatenate(list(stream_audio(path)))
