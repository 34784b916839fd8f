from __future__ import annotations

import sys

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from scribe.db import process_role


@checks.register(checks.Tags.compatibility)
def in_memory_layer_needs_in_process_worker(app_configs, **kwargs):
    """The in-memory layer cannot reach a worker in another process: refuse that setup."""
    backend = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
    if (
        backend.endswith("InMemoryChannelLayer")
        and not settings.SCRIBE_REALTIME_IN_PROCESS
        and not settings.DEBUG
    ):
        return [
            checks.Error(
                "The in-memory channel layer cannot reach realtime workers in other processes.",
                hint="Set REDIS_URL for out-of-process `runworker realtime`, or leave "
                "SCRIBE_REALTIME_IN_PROCESS on.",
                id="realtime.E001",
            )
        ]
    return []


def decodes_here(argv: list[str]) -> bool:
    """Whether this process decodes live audio: a realtime worker, or a web server
    (daphne) running the worker in-process on the embedded defaults."""
    role = process_role(argv)
    if role == "realtime":
        return True
    return (
        role == "web"
        and "daphne" in (argv[0] if argv else "")
        and bool(settings.SCRIBE_REALTIME_IN_PROCESS)
    )


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The model is loaded and warmed when the process starts, not when the first
        # session asks for it, so `ready` is immediate.
        if decodes_here(sys.argv):
            from realtime.worker import warm_up_in_background

            warm_up_in_background()
