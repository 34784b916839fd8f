"""The docker files are checked statically: this machine has no Docker engine."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"


def test_compose_runs_every_process_of_the_topology():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]

    commands = {name: " ".join(s.get("command", [])) for name, s in services.items()}
    assert "daphne" in commands["web"] and "scribe.asgi:application" in commands["web"]
    assert commands["batch-gpu0"].endswith("manage.py qcluster")
    assert commands["realtime-gpu0"].endswith("runworker realtime")
    assert {"postgres", "redis"} <= set(services)
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")
    assert services["web"]["environment"]["REDIS_URL"].startswith("redis://")


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_images_copy_every_app_and_install_the_project(name):
    text = (DOCKER / name).read_text()
    for app in ("scribe", "transcription", "realtime", "glossary", "accounts", "templates"):
        assert re.search(rf"^COPY {app} \./{app}$", text, re.M), app
    assert 'pip install ".[s3]"' in text
    assert "USER scribe" in text
