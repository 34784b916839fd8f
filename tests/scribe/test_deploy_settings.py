"""Production settings behind a TLS-terminating proxy pass Django's deploy check."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_production_settings_pass_the_deploy_check_and_embedded_ones_are_flagged():
    def check(**env: str) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=REPO_ROOT,
            env={**environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    production = check(
        SECRET_KEY="deploy-check-not-a-real-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        SCRIBE_BEHIND_TLS_PROXY="true",
    )
    embedded = check()

    assert production.returncode == 0, production.stderr
    assert embedded.returncode != 0 and "SECURE_HSTS_SECONDS" in embedded.stderr
