"""Client audio frames to 16 kHz mono float32: s16le or f32le at the declared rate."""

from __future__ import annotations

import numpy as np

from transcription.engine.audio import SAMPLE_RATE_HZ

ENCODINGS: dict[str, tuple[np.dtype, float]] = {
    "pcm_s16le": (np.dtype("<i2"), 32768.0),
    "f32le": (np.dtype("<f4"), 1.0),
}
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


class FrameDecoder:
    """Decode frames of one session; resampling keeps its phase across frames."""

    def __init__(self, encoding: str, sample_rate: int) -> None:
        self.dtype, self.scale = ENCODINGS[encoding]
        self.rate = sample_rate
        self._position = 0.0  # next output sample's position in input samples
        self._tail = np.zeros(0, dtype=np.float32)

    def duration_s(self, frame: bytes) -> float:
        return len(frame) / self.dtype.itemsize / self.rate

    def decode(self, frame: bytes) -> np.ndarray:
        samples = np.frombuffer(frame, dtype=self.dtype).astype(np.float32) / self.scale
        if self.rate == SAMPLE_RATE_HZ:
            return samples
        # Linear interpolation across frame boundaries (the last input sample is kept).
        data = np.concatenate([self._tail, samples])
        step = self.rate / SAMPLE_RATE_HZ
        positions = np.arange(self._position, data.shape[0] - 1, step)
        out = np.interp(positions, np.arange(data.shape[0]), data).astype(np.float32)
        consumed = data.shape[0] - 1
        self._position = (
            (positions[-1] + step - consumed) if positions.size else (self._position - consumed)
        )
        self._tail = data[-1:]
        return out
