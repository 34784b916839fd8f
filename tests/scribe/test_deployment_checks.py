"""A distributed deployment refuses the embedded defaults that cannot span processes."""

from __future__ import annotations

import pytest
from django.core import checks

from scribe.checks import distributed_processes_share_state

POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "scribe", "HOST": "postgres"}
REDIS_LAYER = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {}}}
MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


SQLITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}


@pytest.fixture
def distributed(settings, monkeypatch):
    # The dict's entry, not the setting: Django warns that swapping DATABASES is unsafe.
    monkeypatch.setitem(settings.DATABASES, "default", POSTGRES)
    settings.SCRIBE_TOPOLOGY = "distributed"
    settings.CHANNEL_LAYERS = REDIS_LAYER
    return settings


def test_postgres_and_redis_pass_when_processes_run_apart(distributed):
    assert distributed_processes_share_state(None) == []


def test_sqlite_is_refused_when_processes_run_apart(distributed, monkeypatch):
    monkeypatch.setitem(distributed.DATABASES, "default", SQLITE)

    (error,) = distributed_processes_share_state(None)

    assert error.id == "scribe.E001" and error.level == checks.ERROR
    assert "DATABASE_URL" in error.hint


def test_the_in_memory_channel_layer_is_refused_when_processes_run_apart(distributed):
    distributed.CHANNEL_LAYERS = MEMORY_LAYER

    (error,) = distributed_processes_share_state(None)

    assert error.id == "scribe.E002" and "REDIS_URL" in error.hint


def test_the_embedded_topology_keeps_its_defaults(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES, "default", SQLITE)
    settings.SCRIBE_TOPOLOGY = "embedded"
    settings.CHANNEL_LAYERS = MEMORY_LAYER

    assert distributed_processes_share_state(None) == []


def test_the_check_runs_with_every_command(distributed):
    distributed.CHANNEL_LAYERS = MEMORY_LAYER

    assert "scribe.E002" in {message.id for message in checks.run_checks()}
