"""System checks of the deployment as a whole, run by every `manage.py` command.

`manage.py migrate`, `qcluster` and `runworker` run them before doing anything, so a
distributed deployment (``SCRIBE_TOPOLOGY=distributed``, as docker/compose.yml sets)
configured with an embedded default stops at start-up with the fix in the message,
instead of running processes that never see each other's work.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def distributed_processes_share_state(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Refuse SQLite and the in-memory channel layer when processes run apart."""
    if settings.SCRIBE_TOPOLOGY != "distributed":
        return []
    errors: list[checks.CheckMessage] = []
    engine = str(settings.DATABASES["default"]["ENGINE"])
    if engine.endswith("sqlite3"):
        errors.append(
            checks.Error(
                "SCRIBE_TOPOLOGY=distributed but the database is SQLite: a file on one "
                "container's disk, which the other processes cannot share.",
                hint="Set DATABASE_URL=postgres://user@host:5432/scribe (or DATABASE_URL_FILE), "
                "or SCRIBE_TOPOLOGY=embedded to run everything on one machine.",
                id="scribe.E001",
            )
        )
    layer = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
    if layer.endswith("InMemoryChannelLayer"):
        errors.append(
            checks.Error(
                "SCRIBE_TOPOLOGY=distributed but the channel layer is in memory: live "
                "sessions could never reach a realtime worker in another process.",
                hint="Set REDIS_URL=redis://host:6379/0 (it also carries the job queue and "
                "the rate-limit counters), or SCRIBE_TOPOLOGY=embedded.",
                id="scribe.E002",
            )
        )
    return errors
