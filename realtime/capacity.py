"""How many live sessions one realtime worker can serve in real time: measured, not set.

Every session needs a decode step per ``MIN_CHUNK_S`` of audio. The worker times a step
of one session and a batched step of several on its own model and device when it starts,
and admits as many sessions as fit in real time with headroom. On a 2-core CPU that is a
few; on a GPU, where a batch costs little more than one buffer, it is many.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from realtime.session import MIN_CHUNK_S
from transcription.engine import BufferRequest, LoadedModel, decode_buffers
from transcription.engine.audio import SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

PROBE_BUFFER_S = 10.0  # a typical buffer: a few seconds of speech and its left context
PROBE_BATCH = 4
AUTO_MAX_BATCH = 8
BATCH_PAYS = 0.8  # batching is used when a session in a batch costs less than this × alone
HEADROOM = 0.7  # of each chunk's time that decoding may use
MAX_SESSIONS = 64


@dataclass(frozen=True)
class Capacity:
    single_step_s: float  # one session's step
    batched_step_s: float  # a step of PROBE_BATCH sessions together
    sessions: int  # admitted per worker

    @property
    def per_session_s(self) -> float:
        """What one more session adds to a step, decoded in a batch."""
        return self.batched_step_s / PROBE_BATCH

    @property
    def batching_pays(self) -> bool:
        """On a GPU a batch costs little more than one buffer; on a CPU it costs the sum,
        and every session in it waits for the whole batch."""
        return self.per_session_s < BATCH_PAYS * self.single_step_s

    def max_batch(self, setting: int | None) -> int:
        """Sessions decoded together: the operator's number, else what pays here."""
        return setting or (AUTO_MAX_BATCH if self.batching_pays else 1)


def measure_capacity(model: LoadedModel) -> Capacity:
    """Time a single and a batched step on ``model``; derive the session cap."""
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(PROBE_BUFFER_S * SAMPLE_RATE_HZ)) * 0.01).astype(np.float32)
    request = BufferRequest(audio, language="en")
    started = time.perf_counter()
    decode_buffers(model, [request])
    single = time.perf_counter() - started
    started = time.perf_counter()
    decode_buffers(model, [request] * PROBE_BATCH)
    batched = time.perf_counter() - started
    per_session = min(single, batched / PROBE_BATCH)
    sessions = max(1, min(MAX_SESSIONS, int(HEADROOM * MIN_CHUNK_S / per_session)))
    capacity = Capacity(round(single, 4), round(batched, 4), sessions)
    logger.info(
        "realtime capacity: a step takes %.3f s alone, %.3f s for %d together: %d sessions",
        single,
        batched,
        PROBE_BATCH,
        sessions,
    )
    return capacity
