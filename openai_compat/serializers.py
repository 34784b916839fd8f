"""The form fields of ``POST /v1/audio/transcriptions``, turned into scribe's job options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import QueryDict
from rest_framework import serializers

from transcription.serializers import DiarizeField, allowed_models

# OpenAI's model name for Whisper; it runs on the batch (accuracy) lane.
MODEL_ALIASES = {"whisper-1": "batch"}
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
# Array fields: the SDK sends them as ``name[]`` (repeated); plain ``name`` works as well.
LIST_FIELDS = ("timestamp_granularities", "hotwords")


def served_models() -> list[str]:
    """Model names a request may give: OpenAI's alias first, then scribe's own."""
    return [*MODEL_ALIASES, *allowed_models()]


class TranscriptionFormSerializer(serializers.Serializer):
    """OpenAI's fields (file aside), and scribe's extras: hotwords, glossary_id, diarize."""

    model = serializers.CharField()
    language = serializers.CharField(required=False, allow_blank=True)
    prompt = serializers.CharField(required=False, allow_blank=True)
    response_format = serializers.ChoiceField(choices=RESPONSE_FORMATS, default="json")
    temperature = serializers.FloatField(required=False)
    timestamp_granularities = serializers.ListField(
        child=serializers.ChoiceField(choices=GRANULARITIES), required=False
    )
    stream = serializers.BooleanField(default=False)
    hotwords = serializers.ListField(child=serializers.CharField(), required=False)
    glossary_id = serializers.IntegerField(required=False, allow_null=True)
    diarize = DiarizeField(required=False)

    def validate_model(self, value: str) -> str:
        if value not in served_models():
            raise serializers.ValidationError(
                f"The model {value!r} is not served here; use one of {', '.join(served_models())}."
            )
        return MODEL_ALIASES.get(value, value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("timestamp_granularities") and attrs["response_format"] != "verbose_json":
            raise serializers.ValidationError(
                {
                    "timestamp_granularities": [
                        "Timestamp granularities need response_format=verbose_json."
                    ]
                }
            )
        return attrs


@dataclass(frozen=True)
class TranscriptionRequest:
    """What the caller asked for: the job's options, and how to answer."""

    options: dict[str, Any]  # scribe's job options, to be checked by JobOptionsSerializer
    response_format: str
    granularities: tuple[str, ...]
    stream: bool

    @property
    def words(self) -> bool:
        return "word" in self.granularities

    @property
    def segments(self) -> bool:
        """OpenAI leaves segments out of verbose_json only when just words were asked."""
        return "segment" in self.granularities or not self.granularities


def form_data(data: QueryDict) -> dict[str, Any]:
    """Collect the form into plain values: one per field, a list for array fields.

    Unknown fields are refused by name (a misspelt option must not be silently ignored).
    """
    known = set(TranscriptionFormSerializer().fields)
    unknown = sorted({name.removesuffix("[]") for name in data if name != "file"} - known)
    if unknown:
        raise serializers.ValidationError(
            {name: [f"Unknown field. Known: file, {', '.join(sorted(known))}."] for name in unknown}
        )
    values: dict[str, Any] = {}
    for name in known:
        if name in LIST_FIELDS:
            items = [*data.getlist(name), *data.getlist(f"{name}[]")]
            # Hotwords may also come as one comma-separated field.
            items = [part.strip() for item in items for part in item.split(",") if part.strip()]
            if items:
                values[name] = items
        elif name in data:
            values[name] = data[name]
    return values


def transcription_request(data: QueryDict) -> TranscriptionRequest:
    """Check the form; raise ValidationError naming each bad field."""
    form = TranscriptionFormSerializer(data=form_data(data))
    form.is_valid(raise_exception=True)
    fields = form.validated_data
    granularities = tuple(dict.fromkeys(fields.get("timestamp_granularities") or ()))
    options: dict[str, Any] = {"model": fields["model"], "word_timestamps": "word" in granularities}
    for name in ("language", "prompt", "temperature", "hotwords", "glossary_id", "diarize"):
        if name in fields:
            options[name] = fields[name]
    return TranscriptionRequest(
        options=options,
        response_format=fields["response_format"],
        granularities=granularities,
        stream=fields["stream"],
    )
