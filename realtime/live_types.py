"""A live session's data shapes, and the one conversion between them and the engine's.

``TimedWord``, ``FinalSegment`` and ``Partial`` are what the streaming core
(``realtime.session``) works with; the engine decodes buffers into its own ``Word``s and
the job's result is made of its own ``Segment``s. Every crossing between the two goes
through this module: a decode's words into live words (``heard_words``), a final into
the engine's segment (``FinalSegment.to_segment``), and a stored final back into one
(``stored_segment``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transcription.engine.types import Segment, Word

if TYPE_CHECKING:
    from realtime.models import StreamSegment
    from transcription.engine.streaming import BufferDecode


@dataclass(frozen=True)
class TimedWord:
    start: float  # seconds from the start of the session (or of a buffer, where said)
    end: float
    text: str  # with its leading space, as Whisper emits it
    probability: float = 1.0

    def shifted(self, offset_s: float) -> TimedWord:
        """The word ``offset_s`` seconds later: buffer time to session time."""
        return TimedWord(self.start + offset_s, self.end + offset_s, self.text, self.probability)

    def to_word(self) -> Word:
        return Word(round(self.start, 3), round(self.end, 3), self.text, self.probability)


@dataclass(frozen=True)
class FinalSegment:
    index: int
    start: float
    end: float
    text: str
    words: tuple[TimedWord, ...]
    confidence: float

    def to_segment(self) -> Segment:
        """This final as the engine's ``Segment``.

        Live decoding keeps word probabilities only: the segment's log-probability is their
        mean log; its no-speech probability is 0 because words of buffers the model called
        silence are never committed.
        """
        probabilities = [max(w.probability, 1e-6) for w in self.words] or [self.confidence]
        text = " " + self.text
        return Segment(
            id=self.index,
            start=self.start,
            end=self.end,
            text=text,
            avg_logprob=round(sum(math.log(p) for p in probabilities) / len(probabilities), 4),
            no_speech_prob=0.0,
            compression_ratio=round(_compression_ratio(text), 4),
            temperature=0.0,
            words=tuple(w.to_word() for w in self.words),
        )


@dataclass(frozen=True)
class Partial:
    text: str
    start: float
    end: float
    words: tuple[TimedWord, ...] = ()


def heard_words(decoded: BufferDecode) -> list[TimedWord] | None:
    """What a decode of a buffer heard, as live words with times relative to the buffer.

    None: a repetition loop, not a hypothesis (the next step decodes the audio again).
    A buffer the model calls silence yields no words (Whisper writes "Thank you." into
    silence); faster-whisper drops such windows the same way.
    """
    if decoded.looping:
        return None
    if decoded.silent:
        return []
    return [TimedWord(w.start, w.end, w.text, w.probability) for w in decoded.words]


def stored_segment(row: StreamSegment) -> Segment:
    """A stored final as the engine's ``Segment``, with the text as decoded (the session's
    result is corrected again as a whole, as a file job's is)."""
    return Segment(
        id=row.index,
        start=row.start,
        end=row.end,
        text=" " + (row.raw_text or row.text),
        avg_logprob=row.avg_logprob,
        no_speech_prob=0.0,
        compression_ratio=row.compression_ratio,
        temperature=0.0,
        words=tuple(Word(w["start"], w["end"], w["text"], w["probability"]) for w in row.words),
    )


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
