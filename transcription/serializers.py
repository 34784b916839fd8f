"""Request options of the jobs API (a job's representation: transcription/representation.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from accounts.models import Owner
from glossary.models import Glossary
from glossary.review import MODES
from scribe.egress import Egress, EgressRefused
from scribe.env import COMPUTE_TYPES
from transcription.engine import FORMATS, LANGUAGES
from transcription.lanes import LANES

CALLBACK_HOSTS_SETTING = "SCRIBE_WEBHOOK_ALLOWED_HOSTS"


def allowed_models() -> list[str]:
    """Models a request may name: the lanes and the models configured for them."""
    return sorted({*LANES, settings.SCRIBE_BATCH_MODEL, settings.SCRIBE_REALTIME_MODEL})


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
    language = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(required=False, default="batch")
    device = serializers.RegexField(
        r"^(auto|cpu|cuda|cuda:\d+)$",
        required=False,
        error_messages={"invalid": "Use auto, cpu, cuda or cuda:N."},
    )
    compute_type = serializers.ChoiceField(choices=COMPUTE_TYPES, required=False)
    timestamps = serializers.BooleanField(default=True)
    word_timestamps = serializers.BooleanField(default=False)
    diarize = DiarizeField(default=False)
    min_speakers = serializers.IntegerField(required=False, min_value=1, max_value=100)
    max_speakers = serializers.IntegerField(required=False, min_value=1, max_value=100)
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(FORMATS)), required=False, allow_empty=False
    )
    hotwords = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=200
    )
    glossary_id = serializers.IntegerField(required=False, allow_null=True)
    vad = serializers.BooleanField(default=True)
    batch_size = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=64
    )
    post_correction = serializers.DictField(required=False)
    drop_flagged = serializers.BooleanField(default=False)
    # Whisper's initial prompt (before the glossary's terms) and a fixed sampling
    # temperature (0 or unset: Whisper's fallback), as OpenAI's endpoint takes them.
    prompt = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    callback_url = serializers.URLField(required=False, max_length=2000)

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
        return super().to_internal_value(data)

    def validate_language(self, value: str) -> str:
        value = value.strip().lower()
        if value in ("", "auto"):
            return ""
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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("min_speakers"), attrs.get("max_speakers")
        errors: dict[str, str] = {}
        for name, value in (("min_speakers", low), ("max_speakers", high)):
            if value is not None and attrs.get("diarize") is not True:
                errors[name] = 'Applies only with "diarize": true.'
        if low is not None and high is not None and low > high:
            errors["max_speakers"] = f"Must be at least min_speakers ({low})."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def validate_callback_url(self, value: str) -> str:
        refused = callback_url_refusal(url=value, owner=self.context.get("owner"))
        if refused:
            raise serializers.ValidationError(refused)
        return value

    def validate_glossary_id(self, value: int | None) -> int | None:
        owner = self.context.get("owner")
        if value is not None and not Glossary.objects.usable_by(owner).filter(pk=value).exists():
            raise serializers.ValidationError("No glossary of yours has this id.")
        return value

    def validate_post_correction(self, value: dict) -> dict:
        mode = value.get("mode", "none")
        if set(value) - {"mode"} or mode not in MODES:
            raise serializers.ValidationError(f'Use {{"mode": one of {", ".join(MODES)}}}.')
        if mode == "llm" and not settings.SCRIBE_LLM_BASE_URL:
            raise serializers.ValidationError(
                "LLM correction is not configured on this server (SCRIBE_LLM_BASE_URL)."
            )
        return {"mode": mode}


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
