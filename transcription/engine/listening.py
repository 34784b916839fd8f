"""Ask the model which of two spellings a stretch of audio supports.

A glossary term that a small model did not write ("fling" for Flink, "salary" for
Celery) can still be one it hears better than what it wrote once it is shown the term:
Whisper, given the audio and a text, scores every token of the text (the teacher-forced
probabilities faster-whisper reads word confidences from). ``Clip.log_prob`` is that
score summed over a text's tokens; comparing a segment's text with and without a term,
both scored with the term offered the way hotwords are (in the previous-text prompt),
says whether the audio favours the term. A spelling check cannot tell "salary" (said)
from "salary" (Celery); the audio can.

Cost: one encoder pass per clip (a segment, at most Whisper's 30 s), then one decoder pass
per scored text; no search.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

from transcription.engine.manager import LoadedModel

# Whisper's previous-text prompt holds at most this many tokens (half its context).
PROMPT_TOKENS = 223
_FLOOR = 1e-12  # a token probability of 0 is scored as this, not -inf


class Listener:
    """Scores texts against clips of audio with one loaded model, in one language."""

    def __init__(self, model: LoadedModel, language: str | None) -> None:
        self.whisper = model.whisper
        multilingual = self.whisper.model.is_multilingual
        self.tokenizer = Tokenizer(
            self.whisper.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=(language or "en") if multilingual else None,
        )

    def clip(self, samples: np.ndarray) -> Clip:
        """Encode ``samples`` (16 kHz mono, at most 30 s are heard) once, to score against."""
        features = self.whisper.feature_extractor(samples)
        frames = min(features.shape[-1], self.whisper.feature_extractor.nb_max_frames)
        return Clip(self, self.whisper.encode(pad_or_trim(features)), frames)


class Clip:
    def __init__(self, listener: Listener, encoded, frames: int) -> None:
        self.listener = listener
        self.encoded = encoded
        self.frames = frames
        # A segment's own text is scored once per term offered, not once per alternative.
        self._scored: dict[tuple[str, str | None], float] = {}

    def log_prob(self, text: str, prompt: str | None = None) -> float:
        """The log-probability of ``text`` given the clip (and ``prompt`` as previous
        text), summed over its tokens."""
        key = (text, prompt)
        if key not in self._scored:
            self._scored[key] = self._log_prob(text, prompt)
        return self._scored[key]

    def _log_prob(self, text: str, prompt: str | None) -> float:
        tokenizer = self.listener.tokenizer
        # Summed, so a text with fewer tokens loses less: CTranslate2's alignment gives the
        # end of text no probability, so a text that stops before the speech does is not
        # penalised for it. Alternatives are spans of about a term's length.
        tokens = tokenizer.encode(" " + text.strip())
        if not tokens:
            return 0.0
        start = list(tokenizer.sot_sequence)
        if prompt:
            said = tokenizer.encode(" " + prompt.strip())[-PROMPT_TOKENS:]
            start = [tokenizer.sot_prev, *said, *start]
        result = self.listener.whisper.model.align(self.encoded, start, [tokens], self.frames)[0]
        probs = np.maximum(np.asarray(result.text_token_probs, dtype=np.float64), _FLOOR)
        return float(np.log(probs).sum())

    def gain(self, text: str, alternative: str, prompt: str | None = None) -> float:
        """How much likelier ``alternative`` is than ``text`` (log-probability, nats)."""
        return self.log_prob(alternative, prompt) - self.log_prob(text, prompt)
