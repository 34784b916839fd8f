from __future__ import annotations

from django.apps import AppConfig


class ScribeConfig(AppConfig):
    """The project itself as an app: only its deployment checks (no models)."""

    name = "scribe"

    def ready(self) -> None:
        from scribe import checks  # noqa: F401  (registers the checks)
