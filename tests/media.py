"""Make small media files for tests with PyAV: WAVs, mp4s with and without sound."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_wav(path: Path, samples: np.ndarray, *, rate: int = 16000) -> Path:
    """Write mono or (channels, n) float samples in [-1, 1] as 16-bit PCM WAV."""
    data = np.atleast_2d(samples)
    pcm = (np.clip(data, -1, 1) * 32767).astype(np.int16)
    layout = "mono" if pcm.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_tone_wav(
    path: Path, *, seconds: float, rate: int = 16000, channels: int = 1, freq: float = 440.0
) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t)
    return write_wav(path, np.tile(tone, (channels, 1)), rate=rate)


def speech_like(seconds: float, *, rate: int = 16000, f0_hz: float = 120.0) -> np.ndarray:
    """Voiced syllables that Silero VAD hears as speech, where ../shared is absent: a
    glottal pulse train at ``f0_hz`` through the formants of an /a/, opened and closed 2.5
    times a second. A tone or noise of the same loudness is not speech to it."""
    t = np.arange(int(seconds * rate)) / rate
    phase = np.cumsum(f0_hz * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / rate
    pulses = np.diff(np.floor(phase), prepend=0.0)
    # Each formant a two-pole resonator, applied in the frequency domain.
    z = np.exp(-2j * np.pi * np.fft.rfftfreq(t.size))  # e^-jω, ω in radians a sample
    response = np.ones_like(z)
    for centre_hz, bandwidth_hz in ((700, 130), (1220, 70), (2600, 160)):
        r = np.exp(-np.pi * bandwidth_hz / rate)
        cos = np.cos(2 * np.pi * centre_hz / rate)
        response *= (1 - r) / (1 - 2 * r * cos * z + r * r * z * z)
    voiced = np.fft.irfft(np.fft.rfft(pulses) * response, n=t.size)
    out = voiced * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, 1) ** 0.5
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def write_mp4(
    path: Path, *, audio: np.ndarray | None, rate: int = 16000, video_seconds: float = 1.0
) -> Path:
    """Write an mp4 with a small moving-picture track and, if given, an AAC sound track."""
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=rate, layout="mono")
        frames = max(1, int((len(audio) / rate if audio is not None else video_seconds) * 10))
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 10)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None and audio is not None:
            step = 1024
            for start in range(0, len(audio), step):
                block = audio[start : start + step].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(
                    block.reshape(1, -1), format="fltp", layout="mono"
                )
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    return path
