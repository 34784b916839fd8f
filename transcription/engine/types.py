"""The engine's own result and option types: frozen, JSON-friendly, library-independent."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float
    speaker: str | None = None  # set by speaker assignment (diarize)


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    words: tuple[Word, ...] | None = None
    speaker: str | None = None  # set by speaker assignment (diarize)
    tokens: tuple[int, ...] = ()  # the decoder's token ids (OpenAI's verbose_json shows them)

    @property
    def confidence(self) -> float:
        """Mean token probability of the segment: exp(avg_logprob), in [0, 1]."""
        return math.exp(min(self.avg_logprob, 0.0))


@dataclass(frozen=True)
class SpeechRegion:
    start: float
    end: float


@dataclass(frozen=True)
class VadParameters:
    """Silero VAD settings. Finer than faster-whisper's defaults (2 s silence, 400 ms pad)
    so that pauses inside a long file become window cut points and speech coverage means
    something."""

    threshold: float = 0.5
    min_speech_duration_ms: int = 250
    min_silence_duration_ms: int = 500
    speech_pad_ms: int = 200


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detect on the first window with speech
    hotwords: str | None = None
    initial_prompt: str | None = None
    vad: bool = True
    vad_parameters: VadParameters = field(default_factory=VadParameters)
    word_timestamps: bool = False
    beam_size: int = 5
    batch_size: int | None = None  # None: sequential decoding; N: batched inference
    condition_on_previous_text: bool = True
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class RunRecord:
    """What ran, so a result can be reproduced.

    ``model_name`` is the name callers see (``registry.model_served_name``); ``model_path``
    where the server keeps that model, for its operators only: a result leaves it out.
    """

    pipeline_version: str
    model_name: str
    model_path: str
    model_checksum: str
    device: str
    device_index: int
    compute_type_requested: str
    compute_type: str
    cpu_threads: int
    decoding: dict[str, Any]
    library_versions: dict[str, str]
    # Why it ran on other settings than planned: a load or a decode out of memory, each step
    # down (precision, then device) in order.
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Metrics:
    audio_duration_s: float
    processing_time_s: float
    real_time_factor: float  # processing time / audio duration
    speech_duration_s: float
    vad_speech_coverage: float | None  # speech / audio; None with VAD off
    mean_confidence: float | None
    windows: int

    @classmethod
    def measured(
        cls,
        *,
        duration_s: float,
        processing_s: float,
        speech_s: float,
        confidences: Iterable[float],
        windows: int,
        vad: bool = True,
    ) -> Metrics:
        """Build the metrics of a run, rounded and divided the one way every lane reports them.

        ``confidences`` are the segments' (or live steps') mean token probabilities; with
        ``vad`` off there is no speech coverage to report.
        """
        scores = list(confidences)
        return cls(
            audio_duration_s=round(duration_s, 3),
            processing_time_s=round(processing_s, 3),
            real_time_factor=round(processing_s / duration_s, 4) if duration_s else 0.0,
            speech_duration_s=round(speech_s, 3),
            vad_speech_coverage=round(speech_s / duration_s, 4) if vad and duration_s else None,
            mean_confidence=round(float(np.mean(scores)), 4) if scores else None,
            windows=windows,
        )


@dataclass(frozen=True)
class Transcript:
    language: str
    language_probability: float
    duration_s: float
    segments: tuple[Segment, ...]
    speech: tuple[SpeechRegion, ...]
    run: RunRecord
    metrics: Metrics
    speakers: tuple[str, ...] = ()  # labels in order of first appearance; () without diarize

    @property
    def text(self) -> str:
        return " ".join(segment.text.strip() for segment in self.segments if segment.text.strip())

    def to_dict(self, *, words: bool = True) -> dict[str, Any]:
        """Return a JSON-ready dict; ``words=False`` leaves word timings out.

        Speaker keys appear only in a diarized transcript, so other results keep their shape.
        The run record's ``model_path`` stays out: this is the result callers are served.
        """
        data = asdict(self)
        data["run"].pop("model_path")
        data["text"] = self.text
        if not self.speakers:
            data.pop("speakers")
        for raw, segment in zip(data["segments"], self.segments, strict=True):
            raw["confidence"] = round(segment.confidence, 4)
            if raw["speaker"] is None:
                raw.pop("speaker")
            if not words or raw["words"] is None:
                raw.pop("words")
            for word in raw.get("words") or []:
                if word["speaker"] is None:
                    word.pop("speaker")
        return data


def transcript_from_dict(data: dict[str, Any]) -> Transcript:
    """Rebuild a ``Transcript`` from ``Transcript.to_dict()`` output (a stored result).

    Keys added after the engine (flags, raw text, corrections) are ignored; a segment's
    ``text`` is whatever the stored result says, corrected or not.
    """

    def segment(raw: dict[str, Any]) -> Segment:
        words = raw.get("words")
        return Segment(
            id=raw["id"],
            start=raw["start"],
            end=raw["end"],
            text=raw["text"],
            avg_logprob=raw["avg_logprob"],
            no_speech_prob=raw["no_speech_prob"],
            compression_ratio=raw["compression_ratio"],
            temperature=raw["temperature"],
            words=tuple(
                Word(w["start"], w["end"], w["text"], w["probability"], w.get("speaker"))
                for w in words
            )
            if words is not None
            else None,
            speaker=raw.get("speaker"),
            tokens=tuple(raw.get("tokens") or ()),
        )

    return Transcript(
        language=data["language"],
        language_probability=data["language_probability"],
        duration_s=data["duration_s"],
        segments=tuple(segment(s) for s in data["segments"]),
        speech=tuple(SpeechRegion(**r) for r in data["speech"]),
        run=RunRecord(**{"model_path": "", **data["run"]}),
        metrics=Metrics(**data["metrics"]),
        speakers=tuple(data.get("speakers") or ()),
    )
