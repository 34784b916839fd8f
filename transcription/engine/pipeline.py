"""Turn an audio or video file into a ``Transcript``, in windows, with flat memory.

The file is decoded as a stream and cut into windows at pauses (``windows``); each window
is decoded (``decoding``), with a glossary in several passes (``decode_policy``), and its
segments join the transcript in file time. Peak memory is that of one window whatever the
file's length. This module is the loop over windows: progress, cancel and turns, the
step down after running out of GPU memory, and the run record.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import ctranslate2
import faster_whisper
from faster_whisper.tokenizer import _LANGUAGE_CODES
from faster_whisper.vad import VadOptions

import scribe
from transcription.engine.audio import probe, stream_audio
from transcription.engine.decode_policy import decode_with_selector
from transcription.engine.decoding import DecodedWindow, SegmentCallback, WindowDecoder
from transcription.engine.errors import EngineError, TranscriptionCancelled
from transcription.engine.hearing import Hearing, HotwordSelector
from transcription.engine.manager import (
    LoadedModel,
    is_out_of_memory,
    model_manager,
    record_vram_footprint,
)
from transcription.engine.registry import model_served_name
from transcription.engine.types import (
    Metrics,
    RunRecord,
    Segment,
    SpeechRegion,
    TranscribeOptions,
    Transcript,
)
from transcription.engine.windows import WINDOW_S, vad_options, windows

PIPELINE_VERSION = f"scribe-{scribe.__version__}"
LANGUAGES: tuple[str, ...] = tuple(_LANGUAGE_CODES)  # the codes Whisper knows
# Names of the languages scribe's users speak most (the caption page offers them first, a
# notes prompt names the notes' language); the other codes go by their code.
LANGUAGE_NAMES = {
    "ko": "Korean",
    "en": "English",
    "ja": "Japanese",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "ru": "Russian",
    "vi": "Vietnamese",
    "th": "Thai",
    "id": "Indonesian",
}
PROMPT_CONTEXT_CHARS = 400  # previous-window text carried as the next window's prompt
MAX_DECODE_STEP_DOWNS = 2  # after a decode-time OOM: lower precision, then the CPU

ProgressCallback = Callable[[float, float | None], None]
CancelCallback = Callable[[], bool]
TurnCallback = Callable[[str], None]  # may block: live streams on the device go first


def sampling_seed(seed: int) -> None:
    """Seed the sampling Whisper falls back to (temperature > 0) where a greedy or beam
    decode fails its checks, so that a decode repeats (a benchmark's figures)."""
    ctranslate2.set_random_seed(seed)


class _Progress:
    """Called with a time reached (file seconds) after every segment and window: reports
    progress, raises TranscriptionCancelled when the caller cancels, and waits its turn
    on the device (live streams there go first)."""

    def __init__(
        self,
        total_s: float | None,
        device: str,
        on_progress: ProgressCallback | None,
        should_cancel: CancelCallback | None,
        wait_turn: TurnCallback | None,
    ) -> None:
        self.total_s = total_s
        self.device = device  # changes when the model steps down to another device
        self.processed_s = 0.0
        self.on_progress = on_progress
        self.should_cancel = should_cancel
        self.wait_turn = wait_turn

    def __call__(self, seconds: float) -> None:
        self.processed_s = max(self.processed_s, float(seconds))
        if self.on_progress:
            self.on_progress(self.processed_s, self.total_s)
        if self.should_cancel and self.should_cancel():
            raise TranscriptionCancelled(self.processed_s)
        if self.wait_turn:
            self.wait_turn(self.device)


@dataclass
class _Heard:
    """What the windows decoded so far add up to, and what the next window inherits."""

    language: str | None  # None: detected on the first window with speech
    language_probability: float
    prompt: str | None  # the previous-text prompt the next window starts from
    step_downs: list[str]  # each step down after running out of memory, in order
    windows: int = 0
    segments: list[Segment] = field(default_factory=list)
    speech: list[SpeechRegion] = field(default_factory=list)
    window_hotwords: list[str | None] = field(default_factory=list)  # chosen per window
    hearings: list[Hearing] = field(default_factory=list)

    def add(self, decoded: DecodedWindow, *, chosen: bool) -> None:
        """Take a window's decode in (``chosen``: its hotwords were chosen for it)."""
        if chosen:
            self.window_hotwords.append(decoded.hotwords)
            assert decoded.hearing is not None
            self.hearings.append(decoded.hearing)
        info = decoded.info
        if info is not None and self.language is None:
            # Detected once, on the first window with speech, then kept for the whole file.
            self.language = info.language
            self.language_probability = info.language_probability
        self.segments += decoded.segments

    def carry_prompt(self, decoded: DecodedWindow, options: TranscribeOptions) -> None:
        texts = [segment.text for segment in decoded.segments]
        if options.condition_on_previous_text and not options.batch_size and texts:
            # Carry context across the cut, as faster-whisper does between its own chunks.
            self.prompt = "".join(texts)[-PROMPT_CONTEXT_CHARS:]


def transcribe(
    path: Path,
    model: LoadedModel,
    options: TranscribeOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_segment: SegmentCallback | None = None,
    should_cancel: CancelCallback | None = None,
    window_s: float = WINDOW_S,
    select_hotwords: HotwordSelector | None = None,
    channel: int | None = None,
    wait_turn: TurnCallback | None = None,
) -> Transcript:
    """Transcribe ``path`` with ``model`` (only its ``channel``, 0-based, when given).

    ``select_hotwords``, when given, chooses each window's hotwords from quick passes over
    it (``decode_policy``; ``options.hotwords`` is then not used) and each window's
    ``Hearing`` is kept in the run record (``decoding.hearings_per_window``); a biased
    window's segments reach ``on_segment`` once the window is decoded and checked.

    ``on_segment(segment)`` is called with each segment as it is decoded, in file time
    (before the final sort by start), so a caller can show partial results.
    ``on_progress(processed_s, total_s)`` is called after every segment and window;
    ``total_s`` is the container's duration (None if it does not say). When
    ``should_cancel()`` returns true, TranscriptionCancelled is raised at the next segment
    boundary. ``wait_turn(device)`` ("cuda:0", "cpu") is called at the same boundaries and
    may block, to let live streams on the same device go first.

    When CTranslate2 runs out of GPU memory while decoding a window, the model is replaced
    one step down (lower precision, then the CPU; never a smaller model) and the window is
    decoded again, at most MAX_DECODE_STEP_DOWNS times; the run record lists each step.
    Raises MediaError for input that is not readable audio.
    """
    options = options or TranscribeOptions()
    started = time.perf_counter()
    progress = _Progress(
        probe(Path(path)).duration_s, _device_name(model), on_progress, should_cancel, wait_turn
    )
    vad = vad_options(options.vad_parameters) if options.vad else None
    heard = _Heard(
        language=options.language,
        language_probability=1.0 if options.language else 0.0,
        prompt=options.initial_prompt,
        step_downs=[model.fallback] if model.fallback else [],
    )
    for window in windows(stream_audio(Path(path), channel=channel), window_s, vad):
        heard.windows += 1
        heard.speech += window.speech()
        while True:
            decoder = WindowDecoder(
                model, window, options, heard.language, heard.prompt, len(heard.segments), progress
            )
            try:
                decoded = _decode(decoder, select_hotwords, on_segment)
                break
            except RuntimeError as exc:  # CTranslate2's CUDA errors are plain RuntimeErrors
                if not is_out_of_memory(exc):
                    raise
                model = _step_down(model, exc, window=heard.windows, steps=heard.step_downs)
                progress.device = _device_name(model)
        heard.add(decoded, chosen=select_hotwords is not None)
        progress(window.end_s)
        heard.carry_prompt(decoded, options)
    elapsed = time.perf_counter() - started
    record_vram_footprint(model)
    return _transcript(
        heard,
        duration=progress.processed_s,
        elapsed=elapsed,
        run=_run_record(model, options, heard, window_s),
        vad=vad,
    )


def _decode(
    decoder: WindowDecoder, selector: HotwordSelector | None, on_segment: SegmentCallback | None
) -> DecodedWindow:
    """Decode one window: with the glossary's passes where there is a selector."""
    if selector is not None:
        return decode_with_selector(decoder, selector, emit=on_segment)
    return decoder.decode(decoder.options, emit=on_segment)


def _transcript(
    heard: _Heard, *, duration: float, elapsed: float, run: RunRecord, vad: VadOptions | None
) -> Transcript:
    # Real Whisper emits segments in order; keep that promise even when it does not.
    segments = [
        dataclasses.replace(s, id=i)
        for i, s in enumerate(sorted(heard.segments, key=lambda s: (s.start, s.end)))
    ]
    speech_s = sum(r.end - r.start for r in heard.speech)
    return Transcript(
        language=heard.language or "unknown",
        language_probability=round(heard.language_probability, 4),
        duration_s=round(duration, 3),
        segments=tuple(segments),
        speech=tuple(heard.speech),
        run=run,
        metrics=Metrics.measured(
            duration_s=duration,
            processing_s=elapsed,
            speech_s=speech_s,
            confidences=(s.confidence for s in segments),
            windows=heard.windows,
            vad=vad is not None,
        ),
    )


def _device_name(model: LoadedModel) -> str:
    return f"cuda:{model.device_index}" if model.device == "cuda" else "cpu"


def _step_down(
    model: LoadedModel, exc: RuntimeError, *, window: int, steps: list[str]
) -> LoadedModel:
    """Replace a model that ran out of GPU memory mid-window, or give up with a clear error."""
    taken = sum(1 for step in steps if step.startswith("window "))
    where = f"{_device_name(model)} with {model.compute_type}"
    if model.device != "cuda" or taken >= MAX_DECODE_STEP_DOWNS:
        raise EngineError(
            f"Ran out of memory decoding window {window} on {where} "
            f"({'; '.join(steps) or 'no lower precision or device left'}): {exc}. Run fewer "
            "workers per GPU (SCRIBE_WORKERS, SCRIBE_MAX_WORKERS_PER_GPU) or a smaller "
            "batch_size, or free the GPU's memory, then retry the job."
        ) from exc
    replacement = model_manager.step_down(
        model, cause=f"out of GPU memory decoding window {window}"
    )
    steps.append(
        f"window {window}: out of memory on {where}; retried on "
        f"{_device_name(replacement)} with {replacement.compute_type}"
    )
    return replacement


def _run_record(
    model: LoadedModel, options: TranscribeOptions, heard: _Heard, window_s: float
) -> RunRecord:
    decoding = dataclasses.asdict(options)
    decoding["language_used"] = heard.language
    decoding["window_s"] = window_s
    if heard.window_hotwords:
        decoding["hotwords"] = None  # each window had its own
        decoding["hotwords_per_window"] = heard.window_hotwords
        decoding["hearings_per_window"] = [hearing.to_dict() for hearing in heard.hearings]
    return run_record(model, decoding, fallbacks=heard.step_downs)


def run_record(
    model: LoadedModel, decoding: dict, *, fallbacks: list[str] | None = None
) -> RunRecord:
    """What ran: the model, its checksum and device, the decoding parameters given, and
    why it ran on other settings than planned (``fallbacks``; by default the model's own)."""
    if fallbacks is None:
        fallbacks = [model.fallback] if model.fallback else []
    return RunRecord(
        pipeline_version=PIPELINE_VERSION,
        model_name=model_served_name(model.name),
        model_path=str(model.path),
        model_checksum=model.checksum,
        device=model.device,
        device_index=model.device_index,
        compute_type_requested=model.compute_type_requested,
        compute_type=model.compute_type,
        cpu_threads=model.cpu_threads,
        decoding=decoding,
        fallbacks=tuple(fallbacks),
        library_versions={
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
            "av": av.__version__,
        },
    )
