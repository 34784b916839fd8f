"""Engine calls for live audio: decode short buffers to timed words, find speech in them.

The realtime lane decodes a rolling buffer per session on every step. ``decode_buffers``
takes the buffers of every session that is ready in the same tick and runs them through
the model as one batch — one encoder pass, one ``generate``, one alignment pass — the way
faster-whisper's own ``BatchedInferencePipeline`` runs the windows of one file, so a GPU's
capacity grows with the number of sessions instead of serving them one after another.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ctranslate2.models import WhisperGenerationResult
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import (
    get_compression_ratio,
    get_suppressed_tokens,
    merge_punctuations,
)
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.manager import LoadedModel
from transcription.engine.types import Word

# Enough for fast Korean (token-dense) speech; stops a hallucination loop from running to
# Whisper's 448-token limit on every step.
MAX_TOKENS_PER_S = 12
WHISPER_MAX_TOKENS = 448  # prompt and output together
# faster-whisper's own rule for a window that is silence: the model says so and is unsure
# of what it wrote (transcribe.py, no_speech_threshold / log_prob_threshold).
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
LOOPING_COMPRESSION = 2.4  # faster-whisper's compression_ratio_threshold: a repetition loop
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"

# Live pauses are short: a finer VAD than the batch lane's.
STREAM_VAD = VadOptions(
    threshold=0.5, min_speech_duration_ms=150, min_silence_duration_ms=300, speech_pad_ms=100
)
SPEECH_REGIONS_PAD_S = STREAM_VAD.speech_pad_ms / 1000  # how far speech_regions pads speech


@dataclass(frozen=True)
class BufferRequest:
    """One session's buffer for a step: up to 30 s of 16 kHz mono float32 audio."""

    audio: np.ndarray
    prompt: str = ""
    language: str | None = None  # None: detect it on this buffer
    hotwords: str | None = None


@dataclass(frozen=True)
class StepTimings:
    """Where a decode call's time went, in seconds (shared by the whole batch)."""

    features_s: float = 0.0
    encode_s: float = 0.0
    generate_s: float = 0.0
    align_s: float = 0.0
    batch: int = 1

    @property
    def total_s(self) -> float:
        return self.features_s + self.encode_s + self.generate_s + self.align_s


@dataclass(frozen=True)
class BufferDecode:
    words: tuple[Word, ...]
    language: str
    text: str = ""
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    timings: StepTimings = field(default_factory=StepTimings)

    @property
    def looping(self) -> bool:
        """Whether the text is a repetition loop (it compresses too well to be speech)."""
        return get_compression_ratio(self.text) > LOOPING_COMPRESSION if self.text else False

    @property
    def silent(self) -> bool:
        """Whether the model heard no speech (and so wrote nothing worth keeping)."""
        return self.no_speech_prob > NO_SPEECH_PROB and self.avg_logprob < NO_SPEECH_LOGPROB


def decode_buffer(
    model: LoadedModel,
    audio: np.ndarray,
    *,
    prompt: str = "",
    language: str | None = None,
    hotwords: str | None = None,
    beam_size: int = 1,
) -> BufferDecode:
    """Decode one buffer into words with times relative to its start."""
    request = BufferRequest(audio, prompt=prompt, language=language, hotwords=hotwords)
    return decode_buffers(model, [request], beam_size=beam_size)[0]


def decode_buffers(
    model: LoadedModel, requests: Sequence[BufferRequest], *, beam_size: int = 1
) -> list[BufferDecode]:
    """Decode several buffers as batches; one result per request, in order.

    No VAD filtering (the caller decides what is speech), no temperature fallback (a
    wavering step is simply decoded again), no timestamp tokens (one decoder pass; word
    times come from the cross-attention alignment). Buffers that share a language form one
    batch; a buffer whose language is unknown is decoded on its own and its language
    detected (it happens once per session).
    """
    results: list[BufferDecode | None] = [None] * len(requests)
    groups: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        key = request.language or f"detect-{index}"
        groups.setdefault(key, []).append(index)
    for indices in groups.values():
        decoded = _decode_batch(model, [requests[i] for i in indices], beam_size=beam_size)
        for index, result in zip(indices, decoded, strict=True):
            results[index] = result
    return [r for r in results if r is not None]


def _decode_batch(
    model: LoadedModel, requests: Sequence[BufferRequest], *, beam_size: int
) -> list[BufferDecode]:
    whisper = model.whisper
    multilingual = whisper.model.is_multilingual
    started = time.perf_counter()
    features = np.stack([pad_or_trim(whisper.feature_extractor(r.audio)) for r in requests]).astype(
        np.float32
    )
    # Frames that hold audio, not padding: the alignment must not look past them.
    hop = whisper.feature_extractor.hop_length
    num_frames = [
        min(whisper.feature_extractor.nb_max_frames, r.audio.shape[0] // hop) for r in requests
    ]
    featured = time.perf_counter()
    encoder_output = whisper.encode(features)
    encoded = time.perf_counter()

    language = requests[0].language
    if language is None:
        language = (
            whisper.model.detect_language(encoder_output)[0][0][0][2:-2] if multilingual else "en"
        )
    tokenizer = Tokenizer(
        whisper.hf_tokenizer, multilingual, task="transcribe", language=language or "en"
    )
    prompts = [_prompt(whisper, tokenizer, request) for request in requests]
    # Never past Whisper's 448 tokens, prompt included.
    lengths = [
        min(WHISPER_MAX_TOKENS, len(prompt) + _new_tokens(request.audio))
        for prompt, request in zip(prompts, requests, strict=True)
    ]
    generated = whisper.model.generate(
        encoder_output,
        prompts,
        beam_size=beam_size,
        max_length=max(lengths),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
    )
    text_tokens = [[t for t in g.sequences_ids[0] if t < tokenizer.eot] for g in generated]
    decoded_at = time.perf_counter()

    # Every buffer of the batch is aligned in one pass; one with no text gets an end token
    # to align (and no words), so the batch keeps its shape.
    alignments = whisper.find_alignment(
        tokenizer,
        [tokens or [tokenizer.eot] for tokens in text_tokens],
        encoder_output,
        num_frames,
    )
    aligned = time.perf_counter()
    timings = StepTimings(
        features_s=featured - started,
        encode_s=encoded - featured,
        generate_s=decoded_at - encoded,
        align_s=aligned - decoded_at,
        batch=len(requests),
    )

    return [
        _buffer_decode(request, tokens, result, alignment, tokenizer, language or "en", timings)
        for request, tokens, result, alignment in zip(
            requests, text_tokens, generated, alignments, strict=True
        )
    ]


def _prompt(whisper: WhisperModel, tokenizer: Tokenizer, request: BufferRequest) -> list[int]:
    """Return the decoder prompt of one buffer: its previous text and its hotwords."""
    previous = tokenizer.encode(" " + request.prompt.strip()) if request.prompt.strip() else []
    return whisper.get_prompt(
        tokenizer,
        previous_tokens=previous,
        without_timestamps=True,
        hotwords=request.hotwords,
    )


def _buffer_decode(
    request: BufferRequest,
    tokens: list[int],
    result: WhisperGenerationResult,
    alignment: list[dict],
    tokenizer: Tokenizer,
    language: str,
    timings: StepTimings,
) -> BufferDecode:
    """Turn one buffer's generated tokens and their alignment into timed words."""
    duration_s = request.audio.shape[0] / SAMPLE_RATE_HZ
    avg_logprob = result.scores[0] * len(result.sequences_ids[0]) / (len(tokens) + 1)
    words: tuple[Word, ...] = ()
    if tokens:
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        words = tuple(
            Word(
                round(min(float(w["start"]), duration_s), 3),
                round(min(float(w["end"]), duration_s), 3),
                w["word"],
                round(float(w["probability"]), 4),
            )
            for w in alignment
            if w["word"]
        )
    return BufferDecode(
        words=words,
        language=language,
        text=tokenizer.decode(tokens),
        avg_logprob=round(float(avg_logprob), 4),
        no_speech_prob=round(float(result.no_speech_prob), 4),
        timings=timings,
    )


def _new_tokens(audio: np.ndarray) -> int:
    """New tokens allowed for a buffer: enough for its speech, not for a runaway loop."""
    return 16 + int(MAX_TOKENS_PER_S * audio.shape[0] / SAMPLE_RATE_HZ)


def speech_regions(audio: np.ndarray) -> list[tuple[float, float]]:
    """Speech in ``audio`` as (start_s, end_s) pairs, by Silero VAD."""
    if audio.shape[0] < SAMPLE_RATE_HZ // 10:
        return []
    return [
        (r["start"] / SAMPLE_RATE_HZ, r["end"] / SAMPLE_RATE_HZ)
        for r in get_speech_timestamps(audio, STREAM_VAD)
    ]


class SpeechTail:
    """Where the silence after a live stream's last speech started, kept up to date window
    by window as audio arrives: Silero's probability of each new 32 ms window (the model and
    threshold of ``speech_regions``; its rule for the end of speech: the first window under
    the lower threshold after speech), so a look costs nothing and feeding costs the new
    audio's windows, not the buffer's."""

    WINDOW = 512  # samples: Silero's window at 16 kHz
    CONTEXT = 64  # samples of the window before that Silero reads with each
    # Speech is this many windows in a row over the threshold (96 ms, ``speech_regions``'
    # shortest speech is 150 ms): a click or a breath in a pause does not end it.
    MIN_SPEECH_WINDOWS = 3

    def __init__(self, threshold: float = STREAM_VAD.threshold) -> None:
        self._threshold = threshold
        self._below = max(threshold - 0.15, 0.01)  # get_speech_timestamps' neg_threshold
        self._pending = np.zeros(0, dtype=np.float32)
        # Silero's state between feeds, as one call over the whole audio carries it from
        # window to window (faster_whisper.vad.SileroVADModel.__call__, continued).
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._windows = 0  # windows scored so far
        self._run = 0  # windows in a row over the threshold
        self._spoke = False
        self._silence_from: int | None = None  # the window where the silence started

    def feed(self, samples: np.ndarray) -> None:
        """Score the whole windows of ``samples`` (and of what the last feed left)."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        whole = data.shape[0] - data.shape[0] % self.WINDOW
        windows, self._pending = data[:whole].reshape(-1, self.WINDOW), data[whole:]
        if not whole:
            return
        contexts = np.concatenate([self._context[None, :], windows[:-1, -self.CONTEXT :]])
        self._context = windows[-1, -self.CONTEXT :].copy()
        scored, self._h, self._c = get_vad_model().session.run(
            None,
            {"input": np.concatenate([contexts, windows], axis=1), "h": self._h, "c": self._c},
        )
        for index, probability in enumerate(np.asarray(scored).reshape(-1)):
            self._run = self._run + 1 if probability >= self._threshold else 0
            if self._run >= self.MIN_SPEECH_WINDOWS:
                self._spoke, self._silence_from = True, None
            elif probability < self._below and self._spoke and self._silence_from is None:
                self._silence_from = self._windows + index
        self._windows += windows.shape[0]

    @property
    def silence_start_s(self) -> float | None:
        """Stream time where the silence after the last speech started; None while speech
        goes on (or before any)."""
        if self._silence_from is None:
            return None
        return self._silence_from * self.WINDOW / SAMPLE_RATE_HZ


def token_counter(model: LoadedModel):
    """Count tokens as this model's tokenizer does (for Whisper's prompt budget)."""
    tokenizer = model.whisper.hf_tokenizer

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
