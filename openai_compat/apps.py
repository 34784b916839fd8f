from __future__ import annotations

from django.apps import AppConfig


class OpenAICompatConfig(AppConfig):
    """OpenAI's audio API (``/v1/audio/transcriptions``, ``/v1/models``) over scribe's jobs."""

    name = "openai_compat"
    verbose_name = "OpenAI-compatible API"
