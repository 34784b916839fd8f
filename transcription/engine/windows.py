"""Cut a file's audio stream into windows of about ``WINDOW_S`` seconds, at pauses.

Each window is cut at a pause found by Silero VAD near its end (never mid-word when a
pause exists) and keeps its speech regions, so memory stays that of one window whatever
the file's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.types import SpeechRegion, VadParameters

WINDOW_S = 300.0  # 5 min: ~19 MB of samples, ~400 MB transient (VAD and features)
CUT_SEARCH_S = 30.0  # look for a pause this close to the end of a window
WHISPER_CHUNK_S = 30.0  # Whisper's input window, the longest batched clip


@dataclass(frozen=True)
class Window:
    offset: int  # in samples from the start of the file
    audio: np.ndarray
    regions: list[dict] | None  # speech regions in window samples; None with VAD off

    @property
    def start_s(self) -> float:
        return self.offset / SAMPLE_RATE_HZ

    @property
    def end_s(self) -> float:
        return self.start_s + self.audio.shape[0] / SAMPLE_RATE_HZ

    def speech(self) -> list[SpeechRegion]:
        """The window's speech regions in file seconds (none with VAD off)."""
        start_s = self.start_s
        return [
            SpeechRegion(
                round(start_s + r["start"] / SAMPLE_RATE_HZ, 3),
                round(start_s + r["end"] / SAMPLE_RATE_HZ, 3),
            )
            for r in self.regions or ()
        ]


def vad_options(params: VadParameters) -> VadOptions:
    return VadOptions(
        threshold=params.threshold,
        min_speech_duration_ms=params.min_speech_duration_ms,
        min_silence_duration_ms=params.min_silence_duration_ms,
        speech_pad_ms=params.speech_pad_ms,
        max_speech_duration_s=WHISPER_CHUNK_S,
    )


def choose_cut(regions: list[dict], length: int, search: int) -> int:
    """Return the sample index to end a window at: a pause in its last ``search`` samples,
    or the window's end when there is none.

    Whisper decodes speech in 30 s chunks and pads the last one, so among the pauses near
    the end the cut goes where the window's last chunk of speech is fullest: a badly placed
    cut costs a whole extra encoder pass.
    """
    chunk = int(WHISPER_CHUNK_S * SAMPLE_RATE_HZ)
    candidates: list[tuple[int, int]] = []  # (cut, speech samples before it)
    speech = 0
    for i, region in enumerate(regions):
        speech += region["end"] - region["start"]
        gap_end = regions[i + 1]["start"] if i + 1 < len(regions) else length
        middle = (region["end"] + gap_end) // 2
        if gap_end > region["end"] and middle >= length - search:
            candidates.append((middle, speech))
    if not candidates:
        return length
    return max(candidates, key=lambda c: ((c[1] - 1) % chunk, c[0]))[0]


def windows(
    chunks: Iterable[np.ndarray], window_s: float, vad: VadOptions | None
) -> Iterator[Window]:
    """Gather ``chunks`` of samples into windows, each cut at a late pause."""
    window = int(window_s * SAMPLE_RATE_HZ)
    search = min(window // 2, int(CUT_SEARCH_S * SAMPLE_RATE_HZ))
    pending: list[np.ndarray] = []
    pending_samples = 0
    offset = 0
    for chunk in chunks:
        pending.append(chunk)
        pending_samples += chunk.shape[0]
        while pending_samples >= window:
            audio = np.concatenate(pending)
            head = audio[:window]
            regions = get_speech_timestamps(head, vad) if vad else None
            cut = choose_cut(regions, window, search) if regions is not None else window
            kept = [r for r in regions if r["end"] <= cut] if regions is not None else None
            yield Window(offset, head[:cut], kept)
            rest = audio[cut:]
            pending, pending_samples, offset = [rest], rest.shape[0], offset + cut
    if pending_samples:
        audio = np.concatenate(pending)
        yield Window(offset, audio, get_speech_timestamps(audio, vad) if vad else None)
