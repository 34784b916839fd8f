from __future__ import annotations

from django.apps import AppConfig


class DeepgramCompatConfig(AppConfig):
    """Deepgram's API (``/v1/listen``) over scribe's jobs; named so, not ``deepgram``, so
    that it never shadows the ``deepgram`` SDK package its tests and users import."""

    name = "deepgram_compat"
    verbose_name = "Deepgram-compatible API"
