"""Request options and job representations of the jobs API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from glossary.models import Glossary
from glossary.review import MODES
from scribe.env import COMPUTE_TYPES
from transcription.engine import FORMATS, LANGUAGES
from transcription.models import Job
from transcription.services import LANES, job_queue_position
from webhooks.services import CallbackRefused, callback_url_check


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
        try:
            return callback_url_check(url=value, owner=self.context.get("owner"))
        except CallbackRefused as exc:
            raise serializers.ValidationError(str(exc)) from None

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


def job_representation(job: Job, request) -> dict[str, Any]:
    """The caller's view of a job, with what matters in its current state."""
    data: dict[str, Any] = {
        "job_id": str(job.id),
        "status": job.status,
        "kind": job.kind,
        "created_at": job.created_at,
        "source": {
            "name": job.source_name,
            "format": job.media_format,
            "size_bytes": job.media_size_bytes,
            "duration_sec": job.media_duration_s,
        },
        "options": job.options,
        "attempts": job.attempts,
    }
    if job.status == Job.Status.QUEUED:
        # The list annotates it (JobQuerySet.with_jobs_ahead); a single job counts here.
        ahead = getattr(job, "jobs_ahead", None)
        if ahead is None:
            ahead = job_queue_position(job=job)
        data["queue_position"] = ahead + 1
        data["jobs_ahead"] = ahead
    elif job.status == Job.Status.PROCESSING:
        data["started_at"] = job.started_at
        data["progress"] = job.progress_percent
        data["processed_sec"] = round(job.processed_s, 1)
        data["total_sec"] = job.total_s
        data["eta_sec"] = job.eta_s
        data["cancel_requested"] = job.cancel_requested_at is not None
    else:
        data["started_at"] = job.started_at
        data["finished_at"] = job.finished_at
    if job.status == Job.Status.COMPLETED:
        metrics = job.metrics
        data["summary"] = {
            "language": job.language,
            "duration_sec": metrics.get("audio_duration_s"),
            "processing_time_sec": metrics.get("processing_time_s"),
            "real_time_factor": metrics.get("real_time_factor"),
            "speech_coverage": metrics.get("vad_speech_coverage"),
            "mean_confidence": metrics.get("mean_confidence"),
            "model": job.run.get("model_name"),
            "compute_type": job.run.get("compute_type"),
        }
        if job.result_purged_at:
            data["results"] = None
            data["results_purged_at"] = job.result_purged_at
        else:
            url = request.build_absolute_uri(reverse("job-result", args=[job.id]))
            formats = job.options.get("formats") or sorted(FORMATS)
            data["results"] = {fmt: f"{url}?format={fmt}" for fmt in formats}
    if job.status == Job.Status.FAILED:
        data["error"] = {"code": job.error_code, "message": job.error_message}
    if job.interrupted:
        # A live session cut short: its transcript holds what was finalised before.
        data["interrupted"] = {"code": job.error_code, "message": job.error_message}
    return data
