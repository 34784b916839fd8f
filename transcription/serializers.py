"""The jobs API's edge: a job's options parsed into ``JobOptions`` by one schema for both
lanes (a job's representation: transcription/representation.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from accounts.models import Owner
from glossary.models import Glossary
from glossary.review import MODES
from notes.models import Template
from realtime.audio import ENCODINGS, SAMPLE_RATES
from scribe.egress import Egress, EgressRefused
from scribe.env import COMPUTE_TYPES
from scribe.llm import check_egress, llm_config
from transcription.engine import FORMATS, LANGUAGES
from transcription.lanes import LANES, lane_model_served_name
from transcription.options import (
    LIVE_DEFAULT_POST_CORRECTION,
    LIVE_FIELDS,
    LIVE_ONLY_FIELDS,
    LIVE_POST_CORRECTION,
    MAX_HOTWORD_CHARS,
    MAX_HOTWORDS,
    TIMED_FORMATS,
    JobOptions,
    Lane,
)

CALLBACK_HOSTS_SETTING = "SCRIBE_WEBHOOK_ALLOWED_HOSTS"


def allowed_models() -> list[str]:
    """Models a request may name: the lanes and the served names of their models (a local
    directory's path is the operator's, not the caller's: ``lanes.model_configured``)."""
    return sorted({*LANES, *(lane_model_served_name(lane) for lane in LANES)})


def sample_rate_field() -> serializers.ChoiceField:
    """A live or raw PCM client's sample rate: one of those realtime.audio decodes."""
    return serializers.ChoiceField(
        choices=SAMPLE_RATES,
        required=False,
        error_messages={
            "invalid_choice": "{input} Hz is not taken: send one of "
            + ", ".join(map(str, SAMPLE_RATES))
            + "."
        },
    )


def encoding_field() -> serializers.ChoiceField:
    """A live or raw PCM client's sample encoding (realtime.audio.ENCODINGS)."""
    return serializers.ChoiceField(
        choices=sorted(ENCODINGS),
        required=False,
        error_messages={
            "invalid_choice": '"{input}" is not taken: send ' + " or ".join(sorted(ENCODINGS)) + "."
        },
    )


class DiarizeField(serializers.Field):
    """``true`` (pyannote), ``false``, or ``"channels"`` (a speaker per channel, no model)."""

    default_error_messages = {"invalid": 'Use true, false or "channels".'}

    def to_internal_value(self, data: Any) -> bool | str:
        if isinstance(data, str):  # form fields (the OpenAI-style endpoint) are strings
            data = {"true": True, "false": False}.get(data.strip().lower(), data.strip())
        if data is True or data is False or data == "channels":
            return data
        raise serializers.ValidationError(self.error_messages["invalid"], code="invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class JobOptionsSerializer(serializers.Serializer):
    """The options of a job, for both lanes: ``context["lane"]`` is ``"file"`` (default) or
    ``"live"``; ``context["owner"]`` the caller. ``validated_data`` is a ``JobOptions``."""

    language = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    model = serializers.CharField(required=False)
    device = serializers.RegexField(
        r"^(auto|cpu|cuda|cuda:\d+)$",
        required=False,
        error_messages={"invalid": "Use auto, cpu, cuda or cuda:N."},
    )
    compute_type = serializers.ChoiceField(choices=COMPUTE_TYPES, required=False)
    timestamps = serializers.BooleanField(required=False)
    word_timestamps = serializers.BooleanField(required=False)
    diarize = DiarizeField(required=False)
    min_speakers = serializers.IntegerField(required=False, min_value=1, max_value=100)
    max_speakers = serializers.IntegerField(required=False, min_value=1, max_value=100)
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(FORMATS)), required=False, allow_empty=False
    )
    hotwords = serializers.ListField(
        child=serializers.CharField(max_length=MAX_HOTWORD_CHARS),
        required=False,
        max_length=MAX_HOTWORDS,
    )
    glossary_id = serializers.IntegerField(required=False, allow_null=True)
    vad = serializers.BooleanField(required=False)
    batch_size = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=64
    )
    post_correction = serializers.DictField(required=False)
    drop_flagged = serializers.BooleanField(required=False)
    # Whisper's initial prompt (before the glossary's terms) and a fixed sampling
    # temperature (0 or unset: Whisper's fallback), as OpenAI's endpoint takes them.
    prompt = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    callback_url = serializers.URLField(required=False, max_length=2000)
    # Notes by a template and keywords, made by the LLM after the transcript (notes/).
    notes = serializers.DictField(required=False)
    keywords = serializers.BooleanField(required=False)
    sample_rate = sample_rate_field()
    encoding = encoding_field()

    @property
    def lane(self) -> Lane:
        return self.context.get("lane", "file")

    def get_fields(self):
        fields = super().get_fields()
        if self.lane == "live":
            return {name: fields[name] for name in LIVE_FIELDS}
        return {name: field for name, field in fields.items() if name not in LIVE_ONLY_FIELDS}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["options must be a JSON object."]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: [f"Unknown option. Known: {', '.join(self.fields)}."] for name in unknown}
            )
        values = super().to_internal_value(data)
        if self.lane == "live":
            # A live session shows words as they are heard unless told otherwise.
            values.setdefault("word_timestamps", True)
            values.setdefault("post_correction", LIVE_DEFAULT_POST_CORRECTION)
        return values

    def validate_language(self, value: str | None) -> str | None:
        value = (value or "").strip().lower()
        if value in ("", "auto"):
            return None
        if value not in LANGUAGES:
            raise serializers.ValidationError(
                f"{value!r} is not a language Whisper knows: use a code such as ko, en, ja, "
                "or auto."
            )
        return value

    def validate_model(self, value: str) -> str:
        if value not in allowed_models():
            raise serializers.ValidationError(
                f"{value!r} is not served here; use one of {', '.join(allowed_models())}."
            )
        return value

    def validate_device(self, value: str) -> str:
        return self._operator_hardware("device", value)

    def validate_compute_type(self, value: str) -> str:
        return self._operator_hardware("compute_type", value)

    @staticmethod
    def _operator_hardware(name: str, value: str) -> str:
        """Devices and precisions are planned by the operator for the workers' memory."""
        if not settings.SCRIBE_ALLOW_REQUEST_HARDWARE:
            raise serializers.ValidationError(
                f"{name} is chosen by the operator on this server: leave it out "
                "(the operator may allow it with SCRIBE_ALLOW_REQUEST_HARDWARE=true)."
            )
        return value

    def validate_diarize(self, value: bool | str) -> bool | str:
        if value is True and not settings.SCRIBE_DIARIZATION:
            raise serializers.ValidationError(
                "Speaker diarization is disabled on this server (SCRIBE_DIARIZATION). Use "
                '"channels" for a recording with one speaker per channel, or ask the operator '
                "to install the diarize extra and enable it."
            )
        return value

    def validate_formats(self, value: list[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    def validate_hotwords(self, value: list[str]) -> tuple[str, ...]:
        return tuple(value)

    def validate_callback_url(self, value: str) -> str:
        refused = callback_url_refusal(url=value, owner=self.context.get("owner"))
        if refused:
            raise serializers.ValidationError(refused)
        return value

    def validate_notes(self, value: dict) -> str:
        if set(value) != {"template"} or not isinstance(value["template"], str):
            raise serializers.ValidationError(
                'Use {"template": "<slug>"}; GET /v1/templates lists the templates.'
            )
        llm_needed("Notes")
        slug = value["template"]
        if not Template.objects.filter(slug=slug, enabled=True).exists():
            known = Template.objects.filter(enabled=True).values_list("slug", flat=True)
            raise serializers.ValidationError(
                f"No template {slug!r} here; use one of {', '.join(known) or '(none)'} "
                "(GET /v1/templates)."
            )
        return slug

    def validate_keywords(self, value: bool) -> bool:
        if value:
            llm_needed("Keywords")
        return value

    def validate_glossary_id(self, value: int | None) -> int | None:
        owner = self.context.get("owner")
        if value is not None and not Glossary.objects.usable_by(owner).filter(pk=value).exists():
            raise serializers.ValidationError("No glossary of yours has this id.")
        return value

    def validate_post_correction(self, value: dict) -> str:
        mode = value.get("mode", "none")
        modes = LIVE_POST_CORRECTION if self.lane == "live" else MODES
        if set(value) - {"mode"} or mode not in modes:
            why = "; an LLM would hold finals back until it answers" if mode == "llm" else ""
            raise serializers.ValidationError(f'Use {{"mode": one of {", ".join(modes)}}}{why}.')
        if mode == "llm" and not settings.SCRIBE_LLM_BASE_URL:
            raise serializers.ValidationError(
                "LLM correction is not configured on this server (SCRIBE_LLM_BASE_URL)."
            )
        return mode

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("min_speakers"), attrs.get("max_speakers")
        errors: dict[str, str] = {}
        for name, value in (("min_speakers", low), ("max_speakers", high)):
            if value is not None and attrs.get("diarize") is not True:
                errors[name] = 'Applies only with "diarize": true.'
        if low is not None and high is not None and low > high:
            errors["max_speakers"] = f"Must be at least min_speakers ({low})."
        timed = [f for f in attrs.get("formats", ()) if f in TIMED_FORMATS]
        if attrs.get("timestamps") is False and timed:
            errors["formats"] = (
                f"{' and '.join(timed)} place text in time: ask for them with timestamps "
                "(leave timestamps out or true), or drop them from formats."
            )
        if attrs.get("timestamps") is False and attrs.get("word_timestamps"):
            errors["word_timestamps"] = (
                "Word timestamps are times: leave timestamps out (or true) to have them."
            )
        if errors:
            raise serializers.ValidationError(errors)
        if "notes" in attrs:
            attrs["notes_template"] = attrs.pop("notes")
        return JobOptions(**attrs)  # type: ignore[return-value]  # validated_data's type


class PcmQuerySerializer(serializers.Serializer):
    """``?encoding=&sample_rate=`` of a raw PCM body (POST /v1/detect): both, or neither
    (a multipart file says its own format)."""

    encoding = encoding_field()
    sample_rate = sample_rate_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.context.get("raw_body"):
            missing = {
                name: [
                    f"A raw body is PCM: say its format with ?{name}= "
                    "(?encoding=pcm_s16le&sample_rate=16000, say), or send a file as the "
                    "multipart field 'file'."
                ]
                for name in ("encoding", "sample_rate")
                if name not in attrs
            }
            if missing:
                raise serializers.ValidationError(missing)
        return attrs


def options_parse(data: Any, *, owner: Any, lane: Lane = "file") -> JobOptions:
    """Validate a caller's options for ``lane``; raise DRF's ``ValidationError``, whose
    ``detail`` maps each field to what is wrong with it."""
    serializer = JobOptionsSerializer(data=data, context={"owner": owner, "lane": lane})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def llm_needed(what: str) -> None:
    """Refuse what needs the LLM where none is configured, or where its host is not on the
    allowlist (nothing would ever be sent)."""
    config = llm_config()
    if config is None:
        raise serializers.ValidationError(
            f"{what} are made by an LLM, and none is configured on this server: ask the "
            "operator to set SCRIBE_LLM_BASE_URL (an OpenAI-compatible endpoint), or leave "
            "this option out."
        )
    try:
        check_egress(config)
    except EgressRefused as exc:
        raise serializers.ValidationError(
            f"{what} cannot be made here: {exc} Ask the operator to list the LLM's host in "
            "SCRIBE_LLM_ALLOWED_HOSTS."
        ) from None


def callback_url_refusal(*, url: str, owner: Owner | None) -> str | None:
    """Why a job of ``owner`` may not call ``url`` back, and what to do; None if it may.

    The webhooks app checks the allowlist again before every attempt: it may have changed
    meanwhile.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        return f"Use an http or https URL, not {scheme}:."
    try:
        Egress(settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS, setting=CALLBACK_HOSTS_SETTING).check(url)
    except EgressRefused as exc:
        return (
            f"Refused: {exc}. Ask the operator to add the host to {CALLBACK_HOSTS_SETTING}, "
            "or leave callback_url out and poll /v1/jobs/{id}."
        )
    # The webhooks app keeps an owner's signing secret (WebhookSecret, one per owner).
    owners = Owner.objects.filter(webhook_secret__isnull=False)
    if owner is None or not owners.filter(pk=owner.pk).exists():
        return (
            "Callbacks are signed, and your owner has no signing secret yet: ask the operator "
            "to create one in the admin (Webhooks → Webhook secrets → Add), then submit again."
        )
    return None
