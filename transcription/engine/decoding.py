"""Decode one window with faster-whisper into the engine's segments, in file time.

A window's speech regions are decoded exactly as faster-whisper's own ``vad_filter=True``
path does (or as batched clips of at most 30 s), and its timestamps are shifted back to
file time. ``WindowDecoder`` holds what every decode of one window shares; the glossary's
extra passes (``decode_policy``) decode the same window several times through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from faster_whisper import BatchedInferencePipeline
from faster_whisper.transcribe import TranscriptionInfo, restore_speech_timestamps
from faster_whisper.vad import collect_chunks

from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.hearing import Hearing
from transcription.engine.manager import LoadedModel
from transcription.engine.types import Segment, TranscribeOptions, Word
from transcription.engine.windows import WHISPER_CHUNK_S, Window

SegmentCallback = Callable[[Segment], None]


@dataclass(frozen=True)
class DecodedWindow:
    """A window's segments and what its decode found out."""

    segments: list[Segment]
    info: TranscriptionInfo | None  # None where the window held no speech
    hotwords: str | None = None  # chosen for this window by a glossary
    hearing: Hearing | None = None  # what the glossary's passes heard


@dataclass(frozen=True)
class WindowDecoder:
    """Decodes one window: with the model, options, language and previous-text prompt of
    the run at that window, numbering its segments from ``first_id`` and calling
    ``report(segment_end_s)`` after each (progress, cancel, turn)."""

    model: LoadedModel
    window: Window
    options: TranscribeOptions
    language: str | None
    prompt: str | None
    first_id: int
    report: Callable[[float], None]

    def start(self, options: TranscribeOptions) -> tuple[Iterable, TranscriptionInfo | None]:
        """Start decoding the window; return faster-whisper's lazy segments and its info."""
        return decode_window(self.model, self.window, options, self.language, self.prompt)

    def drain(self, raw_segments: Iterable, *, emit: SegmentCallback | None) -> list[Segment]:
        """Our segments of a decode (drained here, once), each shown to ``emit``."""
        start_s, end_s = self.window.start_s, self.window.end_s
        decoded: list[Segment] = []
        for raw in raw_segments:
            segment = to_segment(raw, self.first_id + len(decoded), start_s, end_s)
            if segment is not None:
                decoded.append(segment)
                if emit:
                    emit(segment)
                self.report(segment.end)
        return decoded

    def decode(self, options: TranscribeOptions, *, emit: SegmentCallback | None) -> DecodedWindow:
        """Decode the window with ``options``."""
        raw_segments, info = self.start(options)
        return DecodedWindow(self.drain(raw_segments, emit=emit), info)

    def quick_pass(self, options: TranscribeOptions, hotwords: str | None = None) -> str:
        """What a quick decode of the window hears (unbiased unless ``hotwords``): greedy,
        no word timings, no temperature fallback."""
        quick = dataclasses.replace(
            options, hotwords=hotwords, beam_size=1, word_timestamps=False, temperature=(0.0,)
        )
        segments, _ = decode_window(self.model, self.window, quick, self.language, self.prompt)
        return "".join(segment.text for segment in segments)  # drained here, once


def decode_window(
    model: LoadedModel,
    window: Window,
    options: TranscribeOptions,
    language: str | None,
    prompt: str | None,
) -> tuple[Iterable, TranscriptionInfo | None]:
    """Start decoding one window; return faster-whisper's lazy segments and its info."""
    common = dict(
        language=language,
        beam_size=options.beam_size,
        word_timestamps=options.word_timestamps,
        hotwords=options.hotwords,
        initial_prompt=prompt,
        vad_filter=False,  # the regions come from our own VAD pass over the window
    )
    if options.batch_size:
        if window.regions is not None:
            clips = merge_regions(window.regions)
        else:
            clips = fixed_clips(window.audio.shape[0])
        if not clips:
            return [], None
        pipeline = BatchedInferencePipeline(model.whisper)
        return pipeline.transcribe(
            window.audio, clip_timestamps=clips, batch_size=options.batch_size, **common
        )
    if window.regions is None:
        return model.whisper.transcribe(
            window.audio,
            temperature=list(options.temperature),
            condition_on_previous_text=options.condition_on_previous_text,
            **common,
        )
    if not window.regions:
        return [], None
    # Exactly faster-whisper's vad_filter path: concatenate speech, decode, map times back.
    speech = np.concatenate(collect_chunks(window.audio, window.regions)[0])
    segments, info = model.whisper.transcribe(
        speech,
        temperature=list(options.temperature),
        condition_on_previous_text=options.condition_on_previous_text,
        **common,
    )
    return restore_speech_timestamps(segments, window.regions, SAMPLE_RATE_HZ), info


def merge_regions(regions: list[dict]) -> list[dict]:
    """Group speech regions into clips of at most Whisper's 30 s, in seconds."""
    limit = int(WHISPER_CHUNK_S * SAMPLE_RATE_HZ)
    clips: list[dict] = []
    for region in regions:
        if clips and region["end"] - clips[-1]["start"] <= limit:
            clips[-1]["end"] = region["end"]
        else:
            clips.append({"start": region["start"], "end": region["end"]})
    return [{"start": c["start"] / SAMPLE_RATE_HZ, "end": c["end"] / SAMPLE_RATE_HZ} for c in clips]


def fixed_clips(samples: int) -> list[dict]:
    duration = samples / SAMPLE_RATE_HZ
    starts = np.arange(0.0, duration, WHISPER_CHUNK_S)
    return [{"start": float(s), "end": float(min(s + WHISPER_CHUNK_S, duration))} for s in starts]


def _clamp(value: float, low: float, high: float) -> float:
    return round(float(min(max(value, low), high)), 3)


def to_segment(raw, index: int, start_s: float, end_s: float) -> Segment | None:
    """Convert a faster-whisper segment to ours in file time, clamped to its window.

    Whisper can emit timestamps past the audio it was given (padding to 30 s invites it);
    such a segment is clamped, and one that starts after the window's end is dropped, as is
    one with no text.
    """
    start = _clamp(start_s + raw.start, start_s, end_s)
    if start >= end_s or not raw.text.strip():
        return None
    words = None
    if raw.words is not None:
        words = tuple(
            Word(
                _clamp(start_s + w.start, start_s, end_s),
                _clamp(start_s + w.end, start_s, end_s),
                w.word,
                round(w.probability, 4),
            )
            for w in raw.words
        )
    return Segment(
        id=index,
        start=start,
        end=max(start, _clamp(start_s + raw.end, start_s, end_s)),
        text=raw.text,
        avg_logprob=round(raw.avg_logprob, 4),
        no_speech_prob=round(raw.no_speech_prob, 4),
        compression_ratio=round(raw.compression_ratio, 4),
        temperature=raw.temperature if raw.temperature is not None else 0.0,
        words=words,
        tokens=tuple(int(t) for t in raw.tokens or ()),
    )
