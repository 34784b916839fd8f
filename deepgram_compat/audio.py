"""Deepgram's live encodings to the live lane's 16-bit PCM: ``linear16`` as it is, ``mulaw``
and ``alaw`` (G.711, telephony at 8 kHz) through 256-entry tables built with numpy (the
standard library's ``audioop`` is gone in Python 3.13), several interleaved channels mixed
down to one or split apart. Frames may split a sample anywhere: the bytes left over wait
for the next."""

from __future__ import annotations

import numpy as np

ENCODINGS = ("linear16", "mulaw", "alaw")


def _mulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -magnitude, magnitude).astype("<i2")


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(sign, magnitude, -magnitude).astype("<i2")


TABLES = {"mulaw": _mulaw_table(), "alaw": _alaw_table()}


class PcmFrames:
    """One session's frames in ``encoding`` with ``channels`` interleaved, to s16le: mixed
    down to mono (``pcm``), or one stream per channel (``split``, Deepgram's
    ``multichannel``)."""

    def __init__(self, encoding: str, channels: int = 1) -> None:
        self.encoding = encoding
        self.channels = channels
        self.sample_bytes = 2 if encoding == "linear16" else 1
        self._left = b""

    def pcm(self, frame: bytes) -> bytes:
        """The whole samples of ``frame`` (and of what the last one left) as mono s16le."""
        samples = self._samples(frame)
        if self.channels > 1:
            mixed = samples.reshape(-1, self.channels).astype(np.int32).mean(axis=1)
            samples = mixed.astype("<i2")
        return samples.tobytes()

    def split(self, frame: bytes) -> list[bytes]:
        """The whole samples of ``frame`` (and of what the last one left) as s16le, one
        bytes per channel."""
        samples = self._samples(frame).reshape(-1, self.channels)
        return [np.ascontiguousarray(samples[:, c]).tobytes() for c in range(self.channels)]

    def _samples(self, frame: bytes) -> np.ndarray:
        data = self._left + frame
        whole = len(data) - len(data) % (self.sample_bytes * self.channels)
        data, self._left = data[:whole], data[whole:]
        if self.encoding == "linear16":
            return np.frombuffer(data, dtype="<i2")
        return TABLES[self.encoding][np.frombuffer(data, dtype=np.uint8)].astype("<i2")
