"""Engine calls for live audio: decode a short buffer to timed words, find speech in it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.manager import LoadedModel
from transcription.engine.types import Word

# Enough for fast Korean (token-dense) speech; stops a hallucination loop from running to
# Whisper's 448-token limit on every step.
MAX_TOKENS_PER_S = 12

# Live pauses are short: a finer VAD than the batch lane's.
STREAM_VAD = VadOptions(
    threshold=0.5, min_speech_duration_ms=150, min_silence_duration_ms=300, speech_pad_ms=100
)


@dataclass(frozen=True)
class BufferDecode:
    words: tuple[Word, ...]
    language: str


def decode_buffer(
    model: LoadedModel,
    audio: np.ndarray,
    *,
    prompt: str = "",
    language: str | None = None,
    hotwords: str | None = None,
    beam_size: int = 5,
) -> BufferDecode:
    """Decode up to 30 s of 16 kHz audio into words with times relative to its start.

    Used by the realtime lane on every step: no VAD filtering (the caller decides what is
    speech), no fallback temperatures (a wavering step is simply decoded again), and
    faster-whisper's lazy segments are drained here, once.
    """
    segments, info = model.whisper.transcribe(
        audio,
        language=language,
        initial_prompt=prompt or None,
        hotwords=hotwords,
        beam_size=beam_size,
        word_timestamps=True,
        vad_filter=False,
        condition_on_previous_text=False,
        temperature=0.0,
        # One decoder pass over the buffer: no timestamp tokens (and no seek loop over
        # them); word times come from cross-attention alignment.
        without_timestamps=True,
        max_new_tokens=_token_budget(model, audio, prompt, hotwords),
    )
    words = tuple(
        Word(round(float(w.start), 3), round(float(w.end), 3), w.word, round(w.probability, 4))
        for segment in segments
        for w in (segment.words or [])
    )
    return BufferDecode(words=words, language=info.language)


WHISPER_MAX_TOKENS = 448  # prompt and output together
SPECIAL_TOKENS = 6  # start-of-previous, start-of-transcript, language, task, no-timestamps…


def _token_budget(model: LoadedModel, audio: np.ndarray, prompt: str, hotwords: str | None) -> int:
    """New tokens allowed: enough for the audio, never past Whisper's 448 with the prompt
    (faster-whisper keeps at most 223 prompt tokens, hotwords included)."""
    count = token_counter(model)
    prompt_tokens = min(223, count(" " + prompt) if prompt else 0)
    prompt_tokens += min(223, count(" " + hotwords) if hotwords else 0)
    wanted = 16 + int(MAX_TOKENS_PER_S * audio.shape[0] / SAMPLE_RATE_HZ)
    return max(1, min(wanted, WHISPER_MAX_TOKENS - prompt_tokens - SPECIAL_TOKENS))


def speech_regions(audio: np.ndarray) -> list[tuple[float, float]]:
    """Speech in ``audio`` as (start_s, end_s) pairs, by Silero VAD."""
    if audio.shape[0] < SAMPLE_RATE_HZ // 10:
        return []
    return [
        (r["start"] / SAMPLE_RATE_HZ, r["end"] / SAMPLE_RATE_HZ)
        for r in get_speech_timestamps(audio, STREAM_VAD)
    ]


def token_counter(model: LoadedModel):
    """Count tokens as this model's tokenizer does (for Whisper's prompt budget)."""
    tokenizer = model.whisper.hf_tokenizer

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
