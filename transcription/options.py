"""A job's options, parsed once at the edge into a frozen ``JobOptions``.

One schema (``transcription.serializers.JobOptionsSerializer``) serves the REST upload, the
OpenAI-compatible endpoint and the live ``start`` message; the lanes differ only in which
fields they take and in a few defaults (docs/api.md, docs/streaming.md). After parsing, code
reads attributes; the row keeps the options as JSON (``JobOptions.stored``) and reads them
back with ``JobOptions.from_stored``, which also loads rows written before this type.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.formats import FORMATS

Lane = Literal["file", "live"]
# Formats that place text in time: a job without timestamps cannot have them.
TIMED_FORMATS = ("srt", "vtt")
MAX_HOTWORDS = 200
MAX_HOTWORD_CHARS = 100
# The fields a live ``start`` message takes; a file job takes every field but the last two.
LIVE_FIELDS = (
    "language",
    "hotwords",
    "glossary_id",
    "word_timestamps",
    "post_correction",
    "keywords",
    "sample_rate",
    "encoding",
)
LIVE_ONLY_FIELDS = ("sample_rate", "encoding")
# Live finals are corrected as they are committed: an LLM round trip would hold them back.
LIVE_POST_CORRECTION = ("none", "glossary", "rules")
# What a live session corrects with when it does not say (and what every session stored
# before it could choose had).
LIVE_DEFAULT_POST_CORRECTION = "rules"


@dataclass(frozen=True)
class JobOptions:
    """What a caller asked of one job (a file or a live session)."""

    language: str | None = None  # None: detect
    model: str = "batch"
    device: str | None = None
    compute_type: str | None = None
    timestamps: bool = True
    word_timestamps: bool = False
    diarize: bool | str = False  # True (pyannote), False, or "channels"
    min_speakers: int | None = None
    max_speakers: int | None = None
    formats: tuple[str, ...] = ()  # empty: every format
    hotwords: tuple[str, ...] = ()
    glossary_id: int | None = None
    vad: bool = True
    batch_size: int | None = None
    post_correction: str = "none"
    drop_flagged: bool = False
    prompt: str | None = None
    temperature: float | None = None
    callback_url: str | None = None
    notes_template: str | None = None  # "notes": {"template": slug}: notes after the job
    keywords: bool = False  # keywords by the LLM (a job's after it; a live session's live)
    sample_rate: int = SAMPLE_RATE_HZ  # live: the client's audio
    encoding: str = "pcm_s16le"  # live: the client's audio
    # Set by Deepgram's ``POST /v1/listen``: how its answer is rendered (flags, the audio's
    # sha256, the parameters ignored), and that its callback body is Deepgram's response
    # (deepgram_compat/prerecorded.py).
    deepgram: Mapping[str, Any] | None = None

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | None, *, live: bool = False) -> JobOptions:
        """Read a row's options, including rows written before this type (``language: ""``
        for detect, ``post_correction: {"mode": ...}``, lists for tuples); ``live`` for a
        live session's row, whose defaults differ."""
        data = dict(data or {})
        if live:
            data.setdefault("word_timestamps", True)
            data.setdefault("post_correction", LIVE_DEFAULT_POST_CORRECTION)
        known = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        if isinstance(values.get("post_correction"), Mapping):
            values["post_correction"] = values["post_correction"].get("mode", "none")
        for name in ("formats", "hotwords"):
            if isinstance(values.get(name), str):  # a space-separated string, as once taken
                values[name] = values[name].split()
            if name in values:
                values[name] = tuple(values[name] or ())
        if "language" in values:
            values["language"] = values["language"] or None
        if isinstance(data.get("notes"), Mapping):
            values["notes_template"] = data["notes"].get("template")
        for name in ("model", "encoding", "post_correction"):
            if name in values and values[name] is None:
                del values[name]
        return cls(**values)

    def stored(self, *, live: bool = False) -> dict[str, Any]:
        """The options as the row keeps and the API shows them (JSON): a live session's are
        the fields its ``start`` takes, every one; a file job's leave unset ones out."""
        if live:
            data = {name: getattr(self, name) for name in LIVE_FIELDS}
        else:
            data = {"language": self.language}  # null: detected
            for field in dataclasses.fields(self):
                value = getattr(self, field.name)
                if value is None or value == () or field.name in LIVE_ONLY_FIELDS:
                    continue
                data.setdefault(field.name, value)
        data["post_correction"] = {"mode": self.post_correction}
        if data.pop("notes_template", None):
            data["notes"] = {"template": self.notes_template}
        if not live and not self.keywords:
            data.pop("keywords", None)
        return {name: list(v) if isinstance(v, tuple) else v for name, v in data.items()}

    def without_content(self) -> JobOptions:
        """These options with what the caller wrote taken out (erasure): the prompt, the
        hotwords, the callback URL, and of a Deepgram request's rendering all but its flags
        and numbers (the audio's checksum and the parameter names it sent go)."""
        deepgram = self.deepgram
        if deepgram is not None:
            deepgram = {k: v for k, v in deepgram.items() if isinstance(v, bool | int | float)}
        return dataclasses.replace(
            self, prompt=None, hotwords=(), callback_url=None, deepgram=deepgram
        )

    def result_json(self, stored: str) -> str:
        """A stored json result as this job's caller asked for it: without ``timestamps``,
        no segment (or suppressed segment) carries its times."""
        if self.timestamps:
            return stored
        result = json.loads(stored)
        for segment in (*result.get("segments", ()), *result.get("suppressed_segments", ())):
            for key in ("start", "end", "words"):
                segment.pop(key, None)
        result.pop("speech", None)
        return json.dumps(result, ensure_ascii=False, indent=2) + "\n"

    @property
    def result_formats(self) -> tuple[str, ...]:
        """The formats a caller may download: those asked for, else every one the job's
        timestamps allow."""
        if self.formats:
            return self.formats
        return tuple(f for f in sorted(FORMATS) if self.timestamps or f not in TIMED_FORMATS)
