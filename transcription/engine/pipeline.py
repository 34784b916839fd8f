"""Turn an audio or video file into a ``Transcript``, in windows, with flat memory.

The file is decoded as a stream and cut into windows of about ``WINDOW_S`` seconds. Each
window is cut at a pause found by Silero VAD near its end (never mid-word when a pause
exists), its speech regions are decoded by faster-whisper exactly as its own
``vad_filter=True`` path does, and its timestamps are shifted back to file time. Peak
memory is that of one window whatever the file's length.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import ctranslate2
import faster_whisper
import numpy as np
from faster_whisper import BatchedInferencePipeline
from faster_whisper.tokenizer import _LANGUAGE_CODES
from faster_whisper.transcribe import TranscriptionInfo, restore_speech_timestamps
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

import scribe
from transcription.engine.audio import SAMPLE_RATE_HZ, probe, stream_audio
from transcription.engine.errors import EngineError, TranscriptionCancelled
from transcription.engine.listening import Listener
from transcription.engine.manager import (
    LoadedModel,
    is_out_of_memory,
    model_manager,
    record_vram_footprint,
)
from transcription.engine.types import (
    Metrics,
    RunRecord,
    Segment,
    SpeechRegion,
    TranscribeOptions,
    Transcript,
    VadParameters,
    Word,
)

PIPELINE_VERSION = f"scribe-{scribe.__version__}"
WINDOW_S = 300.0  # 5 min: ~19 MB of samples, ~400 MB transient (VAD and features)
CUT_SEARCH_S = 30.0  # look for a pause this close to the end of a window
WHISPER_CHUNK_S = 30.0  # Whisper's input window, the longest batched clip
LANGUAGES: tuple[str, ...] = tuple(_LANGUAGE_CODES)  # the codes Whisper knows
PROMPT_CONTEXT_CHARS = 400  # previous-window text carried as the next window's prompt
MAX_DECODE_STEP_DOWNS = 2  # after a decode-time OOM: lower precision, then the CPU
# A biased decode with fewer words than this share of the first pass's (which heard at
# least LOST_WORDS_MIN) lost speech: the window is decoded again without hotwords.
LOST_WORDS_RATIO = 0.6
LOST_WORDS_MIN = 8
# A segment's audio is scored with at least this much either side of its timestamps, which
# Whisper places coarsely; alternatives past the first MAX_CHECKS_PER_SEGMENT are not scored.
CHECK_PAD_S = 0.2
MAX_CHECKS_PER_SEGMENT = 48


class HotwordSelector(Protocol):
    """Chooses each window's hotwords from what quick passes over it heard."""

    def survey(self, heard: str) -> str | None:
        """Hotwords for a second quick pass over a window whose first pass heard
        ``heard`` (every term, say); None: no second pass."""

    def __call__(self, heard: str, surveyed: str | None = None) -> str | None:
        """The window's hotwords, from the first pass's text and the survey's (None)."""

    def alternatives(
        self, texts: Sequence[str], *, first_pass: str, survey: str | None
    ) -> Sequence[tuple[str, Sequence[Alternative]]]:
        """Per segment text of a decoded window: the text as the glossary spells it and
        the term spellings to check against the segment's audio (spans of that text)."""


class Alternative(Protocol):
    """A span of a segment's text and the term spelling that might stand there."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def text(self) -> str: ...  # what would replace the span
    @property
    def term(self) -> str: ...  # the term it puts in (offered to the model as a hotword)
    @property
    def reason(self) -> str: ...


ProgressCallback = Callable[[float, float | None], None]
SegmentCallback = Callable[[Segment], None]
CancelCallback = Callable[[], bool]
TurnCallback = Callable[[str], None]  # may block: live streams on the device go first


@dataclass(frozen=True)
class _Window:
    offset: int  # in samples from the start of the file
    audio: np.ndarray
    regions: list[dict] | None  # speech regions in window samples; None with VAD off


def _vad_options(params: VadParameters) -> VadOptions:
    return VadOptions(
        threshold=params.threshold,
        min_speech_duration_ms=params.min_speech_duration_ms,
        min_silence_duration_ms=params.min_silence_duration_ms,
        speech_pad_ms=params.speech_pad_ms,
        max_speech_duration_s=WHISPER_CHUNK_S,
    )


def _choose_cut(regions: list[dict], length: int, search: int) -> int:
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


def _windows(
    chunks: Iterable[np.ndarray], window_s: float, vad: VadOptions | None
) -> Iterator[_Window]:
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
            cut = _choose_cut(regions, window, search) if regions is not None else window
            kept = [r for r in regions if r["end"] <= cut] if regions is not None else None
            yield _Window(offset, head[:cut], kept)
            rest = audio[cut:]
            pending, pending_samples, offset = [rest], rest.shape[0], offset + cut
    if pending_samples:
        audio = np.concatenate(pending)
        yield _Window(offset, audio, get_speech_timestamps(audio, vad) if vad else None)


def _decode_window(
    model: LoadedModel,
    window: _Window,
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
            clips = _merge_regions(window.regions)
        else:
            clips = _fixed_clips(window.audio.shape[0])
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


def _lost_words(decoded: list[Segment], first_pass: str) -> bool:
    """Whether a biased decode wrote much less than the window's first pass heard: a
    prompt can make Whisper skip speech ("Login goes through Keycloak with OIDC, and the
    API checks the JWT on every request" came out as "JWT on every request")."""
    heard = len(first_pass.split())
    written = sum(len(segment.text.split()) for segment in decoded)
    return heard >= LOST_WORDS_MIN and written < LOST_WORDS_RATIO * heard


def _checked(
    listener: Listener,
    window: _Window,
    start_s: float,
    end_s: float,
    decoded: list[Segment],
    proposed: Sequence[tuple[str, Sequence[Alternative]]],
    report: Callable[[float], None],
) -> list[dict]:
    """Score each segment's alternatives against the segment's audio: ``gain`` is how much
    likelier (nats) the model finds the text with the alternative than without, the term
    offered to both (``transcription.engine.listening``). Post-correction decides.
    ``report(segment_end)`` after each segment: a job can be cancelled, or give way to live
    streams, between two segments' checks."""
    checked = []
    for index, (segment, (text, alternatives)) in enumerate(zip(decoded, proposed, strict=True)):
        if not alternatives:
            continue
        # From the previous segment's end to the next one's start: words a decode left
        # out lie between segments, and a term put back there must be heard.
        before = decoded[index - 1].end if index else start_s
        after = decoded[index + 1].start if index + 1 < len(decoded) else end_s
        low_s = max(min(before, segment.start - CHECK_PAD_S), segment.end - WHISPER_CHUNK_S)
        high_s = min(max(after, segment.end + CHECK_PAD_S), low_s + WHISPER_CHUNK_S)
        low, high = (max(0, int((t - start_s) * SAMPLE_RATE_HZ)) for t in (low_s, high_s))
        clip = listener.clip(window.audio[low:high])
        scored = []
        for alternative in alternatives[:MAX_CHECKS_PER_SEGMENT]:
            changed = text[: alternative.start] + alternative.text + text[alternative.end :]
            scored.append(
                {
                    "start": alternative.start,
                    "end": alternative.end,
                    "heard": text[alternative.start : alternative.end],
                    "text": alternative.text,
                    "term": alternative.term,
                    "reason": alternative.reason,
                    "gain": round(clip.gain(text, changed, prompt=alternative.term), 3),
                }
            )
        checked.append(
            {"start": segment.start, "end": segment.end, "text": text, "alternatives": scored}
        )
        report(segment.end)
    return checked


def sampling_seed(seed: int) -> None:
    """Seed the sampling Whisper falls back to (temperature > 0) where a greedy or beam
    decode fails its checks, so that a decode repeats (a benchmark's figures)."""
    ctranslate2.set_random_seed(seed)


def _first_pass(
    model: LoadedModel,
    window: _Window,
    options: TranscribeOptions,
    language: str | None,
    prompt: str | None,
    hotwords: str | None = None,
) -> str:
    """What a quick decode of the window hears (unbiased unless ``hotwords``): the text
    hotwords are chosen from."""
    quick = dataclasses.replace(
        options, hotwords=hotwords, beam_size=1, word_timestamps=False, temperature=(0.0,)
    )
    segments, _ = _decode_window(model, window, quick, language, prompt)
    return "".join(segment.text for segment in segments)  # drained here, once


def _merge_regions(regions: list[dict]) -> list[dict]:
    """Group speech regions into clips of at most Whisper's 30 s, in seconds."""
    limit = int(WHISPER_CHUNK_S * SAMPLE_RATE_HZ)
    clips: list[dict] = []
    for region in regions:
        if clips and region["end"] - clips[-1]["start"] <= limit:
            clips[-1]["end"] = region["end"]
        else:
            clips.append({"start": region["start"], "end": region["end"]})
    return [{"start": c["start"] / SAMPLE_RATE_HZ, "end": c["end"] / SAMPLE_RATE_HZ} for c in clips]


def _fixed_clips(samples: int) -> list[dict]:
    duration = samples / SAMPLE_RATE_HZ
    starts = np.arange(0.0, duration, WHISPER_CHUNK_S)
    return [{"start": float(s), "end": float(min(s + WHISPER_CHUNK_S, duration))} for s in starts]


def _clamp(value: float, low: float, high: float) -> float:
    return round(float(min(max(value, low), high)), 3)


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

    ``select_hotwords(first_pass_text, survey_text)``, when given, chooses each window's
    hotwords from what a quick unbiased first pass of that window heard (greedy, no word
    timings) and, when ``select_hotwords.survey(first_pass_text)`` gives hotwords, what a
    second quick pass offered those heard (the survey), so the biased decode is offered
    the terms likely said there rather than every term (None: no hotwords for that
    window); ``options.hotwords`` is then not used. Each window's hearings are kept in the run
    record (``decoding.hearings_per_window``) for post-correction to reconcile with. A
    biased window's segments reach ``on_segment`` once the window is decoded: a biased
    decode that lost much of what the first pass heard (``_lost_words``) is replaced by
    an unbiased decode, and its text kept in the hearing as ``biased_decode``. The
    selector's ``alternatives`` for the decoded segments are then scored against each
    segment's audio (``_checked``) and kept in the hearing as ``checked``; the text is not
    changed here.

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
    total_s = probe(Path(path)).duration_s
    vad = _vad_options(options.vad_parameters) if options.vad else None
    language = options.language
    language_probability = 1.0 if language else 0.0
    segments: list[Segment] = []
    speech: list[SpeechRegion] = []
    processed = 0.0
    windows = 0
    prompt = options.initial_prompt
    window_hotwords: list[str | None] = []  # chosen per window by select_hotwords
    hearings: list[dict] = []  # per window: its span, the first pass and the survey

    step_downs: list[str] = [model.fallback] if model.fallback else []

    def report(seconds: float) -> None:
        nonlocal processed
        processed = max(processed, float(seconds))
        if on_progress:
            on_progress(processed, total_s)
        if should_cancel and should_cancel():
            raise TranscriptionCancelled(processed)
        if wait_turn:
            wait_turn(_device_name(model))

    def decode(window: _Window, start_s: float, end_s: float):
        """Decode one window to our segments (drained here, once)."""
        window_options, hotwords, heard = options, None, ""
        hearing: dict | None = None
        selector = select_hotwords
        if selector is not None:
            heard = _first_pass(model, window, options, language, prompt)
            survey = selector.survey(heard)
            # Offered hotwords, a pass does not condition on its own previous text: with
            # both in its prompt, Whisper loops ("Weaviate. Weaviate. …") and skips speech
            # across a long window.
            own_text = dataclasses.replace(options, condition_on_previous_text=False)
            surveyed = (
                _first_pass(model, window, own_text, language, prompt, hotwords=survey)
                if survey
                else None
            )
            hotwords = selector(heard, surveyed)
            window_options = dataclasses.replace(own_text, hotwords=hotwords)
            hearing = {
                "start": round(start_s, 3),
                "end": round(end_s, 3),
                "first_pass": heard,
                "survey": surveyed,
            }
        raw_segments, info = _decode_window(model, window, window_options, language, prompt)
        if hearing is None or selector is None:
            return drain(raw_segments, start_s, end_s, emit=True), info, hotwords, hearing
        # Biased, a window's segments are held until it is decoded: a decode that lost
        # much of what the first pass heard is replaced by an unbiased one.
        decoded = drain(raw_segments, start_s, end_s, emit=False)
        if _lost_words(decoded, heard):
            hearing["biased_decode"] = "".join(segment.text for segment in decoded)
            unbiased = dataclasses.replace(options, hotwords=None)
            raw_segments, info = _decode_window(model, window, unbiased, language, prompt)
            decoded = drain(raw_segments, start_s, end_s, emit=False)
        hearing["checked"] = _checked(
            Listener(model, language or (info.language if info else None)),
            window,
            start_s,
            end_s,
            decoded,
            selector.alternatives(
                [segment.text for segment in decoded], first_pass=heard, survey=surveyed
            ),
            report,
        )
        if on_segment:
            for segment in decoded:
                on_segment(segment)
        return decoded, info, hotwords, hearing

    def drain(raw_segments: Iterable, start_s: float, end_s: float, *, emit: bool):
        decoded: list[Segment] = []
        for raw in raw_segments:
            segment = _to_segment(raw, len(segments) + len(decoded), start_s, end_s)
            if segment is not None:
                decoded.append(segment)
                if emit and on_segment:
                    on_segment(segment)
                report(segment.end)
        return decoded

    for window in _windows(stream_audio(Path(path), channel=channel), window_s, vad):
        windows += 1
        start_s = window.offset / SAMPLE_RATE_HZ
        end_s = start_s + window.audio.shape[0] / SAMPLE_RATE_HZ
        if window.regions is not None:
            speech += [
                SpeechRegion(
                    round(start_s + r["start"] / SAMPLE_RATE_HZ, 3),
                    round(start_s + r["end"] / SAMPLE_RATE_HZ, 3),
                )
                for r in window.regions
            ]
        while True:
            try:
                decoded, info, hotwords, hearing = decode(window, start_s, end_s)
                break
            except RuntimeError as exc:  # CTranslate2's CUDA errors are plain RuntimeErrors
                if not is_out_of_memory(exc):
                    raise
                model = _step_down(model, exc, window=windows, steps=step_downs)
        if select_hotwords is not None:
            window_hotwords.append(hotwords)
            hearings.append(hearing)
        if info is not None and language is None:
            # Detected once, on the first window with speech, then kept for the whole file.
            language = info.language
            language_probability = info.language_probability
        segments += decoded
        report(end_s)
        window_texts = [segment.text for segment in decoded]
        if options.condition_on_previous_text and not options.batch_size and window_texts:
            # Carry context across the cut, as faster-whisper does between its own chunks.
            prompt = "".join(window_texts)[-PROMPT_CONTEXT_CHARS:]

    # Real Whisper emits segments in order; keep that promise even when it does not.
    segments = [
        dataclasses.replace(s, id=i)
        for i, s in enumerate(sorted(segments, key=lambda s: (s.start, s.end)))
    ]
    duration = processed
    elapsed = time.perf_counter() - started
    speech_s = sum(r.end - r.start for r in speech)
    record_vram_footprint(model)
    return Transcript(
        language=language or "unknown",
        language_probability=round(language_probability, 4),
        duration_s=round(duration, 3),
        segments=tuple(segments),
        speech=tuple(speech),
        run=_run_record(model, options, language, window_s, window_hotwords, hearings, step_downs),
        metrics=Metrics(
            audio_duration_s=round(duration, 3),
            processing_time_s=round(elapsed, 3),
            real_time_factor=round(elapsed / duration, 4) if duration else 0.0,
            speech_duration_s=round(speech_s, 3),
            vad_speech_coverage=round(speech_s / duration, 4) if vad and duration else None,
            mean_confidence=(
                round(float(np.mean([s.confidence for s in segments])), 4) if segments else None
            ),
            windows=windows,
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


def _to_segment(raw, index: int, start_s: float, end_s: float) -> Segment | None:
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


def _run_record(
    model: LoadedModel,
    options: TranscribeOptions,
    language: str | None,
    window_s: float,
    window_hotwords: list[str | None],
    hearings: list[dict],
    fallbacks: list[str],
) -> RunRecord:
    decoding = dataclasses.asdict(options)
    decoding["language_used"] = language
    decoding["window_s"] = window_s
    if window_hotwords:
        decoding["hotwords"] = None  # each window had its own
        decoding["hotwords_per_window"] = window_hotwords
        decoding["hearings_per_window"] = hearings
    return run_record(model, decoding, fallbacks=fallbacks)


def run_record(
    model: LoadedModel, decoding: dict, *, fallbacks: list[str] | None = None
) -> RunRecord:
    """What ran: the model, its checksum and device, the decoding parameters given, and
    why it ran on other settings than planned (``fallbacks``; by default the model's own)."""
    if fallbacks is None:
        fallbacks = [model.fallback] if model.fallback else []
    return RunRecord(
        pipeline_version=PIPELINE_VERSION,
        model_name=model.name,
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
