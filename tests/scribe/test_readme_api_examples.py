"""The documentation's API and streaming examples say what the server does (README.md and
docs/*.md: the examples moved to docs/api.md and docs/streaming.md, the README keeps the
shortest path)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from glossary.models import Glossary
from tests.conftest import REPO_ROOT
from tests.documentation import documentation
from transcription.options import LIVE_FIELDS

DOCS = documentation()


@pytest.mark.django_db
def test_every_curl_example_sets_the_job_it_then_polls(api, job_settings, tone_wav):
    examples = [b for b in re.findall(r"```sh\n(.*?)```", DOCS, re.S) if "/v1/jobs/$JOB" in b]
    assert len(examples) >= 2, "the README and docs/api.md each show a job from upload to result"
    with tone_wav.open("rb") as handle:
        created = api.post("/v1/jobs", {"file": handle, "options": "{}"}, format="multipart")

    for example in examples:
        first_use = example.index("$JOB")
        assignment = re.search(r"^JOB=\$\(curl .*?\| (python3 -c '[^']*')\)$", example, re.M | re.S)
        assert assignment and assignment.start() < first_use, "the example never sets $JOB"
        job = subprocess.run(
            ["sh", "-c", assignment.group(1)],
            input=json.dumps(created.json()),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

        assert job == created.json()["job_id"]


def test_the_stream_table_lists_every_start_option():
    row = next(line for line in DOCS.splitlines() if line.startswith("| client → server |"))

    assert {name for name in set(LIVE_FIELDS) if f'"{name}"' not in row} == set()


def test_the_stream_defaults_table_gives_every_start_option_a_default():
    page = (REPO_ROOT / "docs" / "streaming.md").read_text(encoding="utf-8")
    section = page.split("## Options and their defaults", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines() if "|" in line}

    assert rows >= set(LIVE_FIELDS)


@pytest.mark.django_db
def test_glossary_and_correction_modes_work_as_the_docs_now_say(
    api, owner_key, job_settings, tone_wav
):
    glossary = Glossary.objects.create(owner=owner_key[0].owner, name="infra")
    options = {"glossary_id": glossary.pk, "post_correction": {"mode": "rules"}}

    with tone_wav.open("rb") as handle:
        response = api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps(options)}, format="multipart"
        )

    assert response.status_code == 202
    assert "modes other than `none` are refused" not in DOCS


def documented_command_flags() -> dict[str, set[str]]:
    """Every ``manage.py COMMAND … --flag`` the docs show, continuation lines included."""
    logical = re.sub(r"\\\n\s*", " ", DOCS)  # join shell continuation lines
    logical = re.sub(r"\n\s{4}(?=\[|--)", " ", logical)  # usage lines continued by indent
    found: dict[str, set[str]] = {}
    for line in logical.splitlines():
        for match in re.finditer(r"manage\.py ([a-z_]+)((?:[^`\n])*)", line):
            command, rest = match.groups()
            found.setdefault(command, set()).update(re.findall(r"(--[a-z][a-z-]*)", rest))
    return found


def test_every_command_and_flag_the_docs_show_exists():
    shown = documented_command_flags()
    assert {"transcribe", "detect", "bench", "stream", "create_api_key", "serve"} <= set(shown)
    for command, flags in sorted(shown.items()):
        result = subprocess.run(
            [sys.executable, "manage.py", command, "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"manage.py {command}: {result.stderr[-500:]}"
        missing = sorted(f for f in flags if f not in result.stdout)
        assert not missing, f"the docs show manage.py {command} {missing}, which it lacks"
