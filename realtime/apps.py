from django.apps import AppConfig
from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def in_memory_layer_needs_in_process_worker(app_configs, **kwargs):
    """The in-memory layer cannot reach a worker in another process: refuse that setup."""
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
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


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"
