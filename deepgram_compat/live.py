"""Deepgram's live protocol over scribe's live session: its query, and the translation of
the realtime worker's events into Deepgram's messages. Pure: no I/O (``deepgram_compat.consumers``
does it), so every message shape is tested without a socket.

What a session says, in Deepgram's words:
- ``partial`` → ``Results`` with ``is_final: false`` (only with ``interim_results=true``):
  the open hypothesis, which the next one may change;
- ``final`` → ``Results`` with ``is_final: true``, never changed; the last final before a
  pause of ``endpointing`` ms has ``speech_final: true`` (an empty one when its words were
  final already); the finals of a ``Finalize`` come as one ``Results`` with
  ``from_finalize: true`` (empty when nothing was said);
- ``SpeechStarted`` (``vad_events=true``) with the first hypothesis of an utterance, at its
  first word's start; ``UtteranceEnd`` (``utterance_end_ms``) once the audio received runs
  that long past the last word heard;
- ``Metadata`` when the session ends: what ran, how long, and the parameters ignored.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from deepgram_compat import params
from deepgram_compat.audio import ENCODINGS
from transcription.engine import PIPELINE_VERSION

# What the live protocol reads; everything else is accepted and named as ignored.
HANDLED = frozenset(
    {
        "model",
        "language",
        "encoding",
        "sample_rate",
        "channels",
        "multichannel",
        "interim_results",
        "punctuate",
        "smart_format",
        "endpointing",
        "utterance_end_ms",
        "vad_events",
        "keyterm",
        "keywords",
        "tag",
    }
)
DEFAULT_ENDPOINTING_MS = 10  # Deepgram's; scribe's floor is VAD's (realtime.scheduler)
# How often the session decodes (the interim cadence): Deepgram's clients want an interim
# at least every 0.5 s; /v1/stream steps once per second of audio.
STEP_S = 0.5
NOT_A_WORD = re.compile(r"[^\w'-]+")
Query = Mapping[str, Sequence[str]]  # parse_qs's shape


class ParameterError(ValueError):
    """A parameter scribe reads but cannot honour; the message says what to send."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class LiveQuery:
    model: str  # as the client named it: the realtime worker's model runs
    language: str | None  # Whisper's code; None: detect
    hotwords: tuple[str, ...]
    encoding: str
    sample_rate: int
    channels: int
    multichannel: bool  # each channel transcribed apart; else they are mixed down to one
    interim_results: bool
    punctuate: bool
    endpointing_ms: int | None  # None: off (``endpointing=false``)
    utterance_end_ms: int | None
    vad_events: bool
    tags: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def scribe_options(self) -> dict:
        """The live job options (``transcription.serializers``' schema) these map to."""
        options: dict = {"language": self.language, "sample_rate": self.sample_rate}
        if self.hotwords:
            options["hotwords"] = list(self.hotwords)
        return options

    @property
    def transcribed_channels(self) -> int:
        """How many transcripts: one per channel with ``multichannel``, else one."""
        return self.channels if self.multichannel else 1

    def tuning(self) -> dict:
        """What the session's streaming core is asked for (``realtime.scheduler``)."""
        tuning: dict = {"step_s": STEP_S}
        if self.endpointing_ms is not None:
            tuning["pause_s"] = self.endpointing_ms / 1000
            tuning["watch_pause"] = True  # speech_final as soon as the pause is heard
        return tuning


def read_live(query: Query) -> LiveQuery:
    """The live query; ParameterError for what scribe reads and cannot honour."""

    def one(name: str) -> str | None:
        values = query.get(name) or ()
        return values[-1] if values else None

    def flag(name: str) -> bool:
        try:
            return params.flag(one(name))
        except ValueError as exc:
            raise ParameterError(f"{name}: {exc}") from None

    encoding = one("encoding") or "linear16"
    if encoding not in ENCODINGS:
        raise ParameterError(
            f"encoding={encoding!r} is not taken live: send raw audio as linear16, mulaw or "
            "alaw (opus and containers are not decoded live here)."
        )
    channels = _integer("channels", one("channels"), low=1, high=32) or 1
    endpointing: int | None = DEFAULT_ENDPOINTING_MS
    if (one("endpointing") or "").lower() in params.FALSE:
        endpointing = None
    elif one("endpointing"):
        endpointing = _integer("endpointing", one("endpointing"), low=0, high=60000)
    return LiveQuery(
        model=one("model") or "",
        language=params.language(one("language")),
        hotwords=params.hotwords(query.get("keyterm") or (), query.get("keywords") or ()),
        encoding=encoding,
        sample_rate=_integer("sample_rate", one("sample_rate"), low=8000, high=48000)
        or (16000 if encoding == "linear16" else 8000),
        channels=channels,
        multichannel=flag("multichannel") and channels > 1,
        interim_results=flag("interim_results"),
        punctuate=flag("punctuate") or flag("smart_format"),
        endpointing_ms=endpointing,
        utterance_end_ms=_integer("utterance_end_ms", one("utterance_end_ms"), low=1, high=60000),
        vad_events=flag("vad_events"),
        tags=tuple(query.get("tag") or ()),
        ignored=tuple(params.ignored(query, handled=HANDLED)),
    )


def _integer(name: str, value: str | None, *, low: int, high: int) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ParameterError(f"{name}={value!r} is not a whole number.") from None
    if not low <= number <= high:
        raise ParameterError(f"{name}={number} is out of range: send {low} to {high}.")
    return number


def error_message(variant: str, description: str) -> dict:
    return {"type": "Error", "variant": variant, "description": description, "message": description}


class LiveTranslation:
    """One session's state between the worker's events and Deepgram's messages."""

    def __init__(self, query: LiveQuery, channel: int = 0) -> None:
        self.query = query
        self.channel = [channel, query.transcribed_channels]  # Deepgram's [index, count]
        self.request_id = str(uuid.uuid4())  # the job's id once the session is ready
        self.model = "scribe"
        self.created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.audio_s = 0.0  # received so far (what the session has heard or will)
        self.cursor_s = 0.0  # where the last final ended
        self.heard_until_s = 0.0  # the end of the last word heard, final or not
        self.utterance_ended_s = 0.0  # UtteranceEnd was sent for words up to here
        self.speaking = False  # SpeechStarted sent, the utterance not yet over
        self.flushed: list[dict] = []  # finals of a Finalize, sent together
        self.sha256 = hashlib.sha256()

    # --- from the client ------------------------------------------------------------------

    def audio(self, pcm: bytes) -> list[dict]:
        """16 kHz-or-not mono s16le received: the messages its time makes due."""
        self.sha256.update(pcm)
        self.audio_s += len(pcm) / 2 / self.query.sample_rate
        limit_ms = self.query.utterance_end_ms
        if (
            limit_ms is not None
            and self.heard_until_s > self.utterance_ended_s
            and self.audio_s - self.heard_until_s >= limit_ms / 1000
        ):
            self.utterance_ended_s = self.heard_until_s
            self.speaking = False
            return [
                {
                    "type": "UtteranceEnd",
                    "channel": self.channel,
                    "last_word_end": round(self.heard_until_s, 3),
                }
            ]
        return []

    # --- from the worker ------------------------------------------------------------------

    def event(self, event: Mapping) -> list[dict]:
        """A worker event as Deepgram's messages (none for what Deepgram has no word for)."""
        kind = event.get("type")
        if kind == "ready":
            self.request_id = event.get("job_id") or self.request_id
            self.model = event.get("model") or self.model
            return []
        if kind == "partial":
            return self._interim(event)
        if kind == "final" and event.get("flushed"):
            self.flushed.append(event["segment"])
            return []
        if kind == "final":
            return [*self._started(event["segment"]), self._final(event)]
        if kind == "end_of_speech":
            self.speaking = False
            if self.query.endpointing_ms is None:
                return []
            return [self._results([], "", end=self.cursor_s, is_final=True, speech_final=True)]
        if kind == "finalized":
            return self._finalized()
        if kind == "error":
            return [error_message(event.get("code", "error"), event.get("message", ""))]
        return []

    def _interim(self, partial: Mapping) -> list[dict]:
        words = partial.get("words") or []
        if words:
            self.heard_until_s = max(self.heard_until_s, words[-1]["end"])
        messages = self._started(partial)
        if self.query.interim_results:
            messages.append(self._results(words, partial["text"], end=partial["end"]))
        return messages

    def _started(self, said: Mapping) -> list[dict]:
        if self.speaking or not (said.get("words") or said.get("text")):
            return []
        self.speaking = True
        if not self.query.vad_events:
            return []
        return [{"type": "SpeechStarted", "channel": self.channel, "timestamp": said["start"]}]

    def _final(self, event: Mapping) -> dict:
        segment = event["segment"]
        speech_final = bool(event.get("end_of_speech")) and self.query.endpointing_ms is not None
        if speech_final:
            self.speaking = False
        words = segment.get("words") or []
        if words:
            self.heard_until_s = max(self.heard_until_s, words[-1]["end"])
        return self._results(
            words,
            segment["text"],
            end=segment["end"],
            is_final=True,
            speech_final=speech_final,
            confidence=segment.get("confidence"),
        )

    def _finalized(self) -> list[dict]:
        segments, self.flushed = self.flushed, []
        words = [word for segment in segments for word in segment.get("words") or []]
        if words:
            self.heard_until_s = max(self.heard_until_s, words[-1]["end"])
        text = " ".join(segment["text"] for segment in segments)
        end = max([self.audio_s, *(segment["end"] for segment in segments)])
        return [self._results(words, text, end=end, is_final=True, from_finalize=True)]

    # --- messages -------------------------------------------------------------------------

    def _results(
        self,
        words: list,
        text: str,
        *,
        end: float,
        is_final: bool = False,
        speech_final: bool = False,
        from_finalize: bool = False,
        confidence: float | None = None,
    ) -> dict:
        start = self.cursor_s
        if is_final:
            self.cursor_s = max(self.cursor_s, end)
        items = [self._word(word) for word in words]
        if confidence is None:
            probabilities = [item["confidence"] for item in items]
            confidence = sum(probabilities) / len(probabilities) if probabilities else 0.0
        punctuate = self.query.punctuate
        transcript = text.strip() if punctuate else " ".join(i["word"] for i in items)
        return {
            "type": "Results",
            "channel_index": self.channel,
            "duration": round(max(0.0, max(end, start) - start), 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {"transcript": transcript, "confidence": round(confidence, 4), "words": items}
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_uuid": self.model_uuid,
                "model_info": self.model_info,
            },
        }

    @staticmethod
    def _word(word: Mapping) -> dict:
        punctuated = word["text"].strip()
        return {
            "word": NOT_A_WORD.sub("", punctuated).lower() or punctuated.lower(),
            "start": round(word["start"], 3),
            "end": round(word["end"], 3),
            "confidence": round(word.get("probability", 1.0), 4),
            "punctuated_word": punctuated,
        }

    @property
    def model_uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"scribe:{self.model}"))

    @property
    def model_info(self) -> dict:
        return {"name": self.model, "version": PIPELINE_VERSION, "arch": "whisper"}

    def metadata(self) -> dict:
        """The session's last message, after its last ``Results``."""
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": self.sha256.hexdigest(),
            "created": self.created,
            "duration": round(self.audio_s, 3),
            "channels": self.query.channels,
            "models": [self.model_uuid],
            "model_info": {self.model_uuid: self.model_info},
            "ignored_parameters": list(self.query.ignored),
        }
