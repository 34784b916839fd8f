"""`manage.py models`: list, fetch (offline refusal), import bundles, verify checksums; and
workers that refuse to start without their model."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import REPO_ROOT
from transcription.engine.bundles import MANIFEST


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("models", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def bundle(model_dir: Path, archive: Path) -> Path:
    """An offline bundle as an operator would make one: the model directory, archived."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as handle:
            for path in model_dir.iterdir():
                handle.write(path, f"{model_dir.name}/{path.name}")
    else:
        with tarfile.open(archive, "w:gz") as handle:
            handle.add(model_dir, arcname=model_dir.name)
    return archive


def test_it_imports_a_model_directory_records_checksums_and_verifies_it(
    model_dir, models_dir, settings
):
    out, _ = run("import", str(model_dir), "--name", "large-v3")

    target = models_dir / "large-v3"
    assert (target / "model.bin").read_bytes() == (model_dir / "model.bin").read_bytes()
    assert (target / MANIFEST).is_file()
    assert "SCRIBE_BATCH_MODEL=large-v3" in out
    # The default batch model name now resolves offline, and verifies.
    settings.SCRIBE_BATCH_MODEL = "large-v3"
    verified, _ = run("verify", "batch")
    assert "large-v3" in verified and "ok" in verified


@pytest.mark.parametrize("archive", ["bundle.tar.gz", "bundle.zip"])
def test_it_imports_an_offline_archive_named_after_the_file(
    model_dir, models_dir, tmp_path, archive
):
    source = bundle(model_dir, tmp_path / archive)

    run("import", str(source))

    assert (models_dir / "bundle" / "model.bin").is_file()
    listed, _ = run("list")
    assert "bundle" in listed and "checksums recorded" in listed


def test_verify_finds_a_file_altered_after_import(model_dir, models_dir, settings):
    run("import", str(model_dir), "--name", "mine")
    settings.SCRIBE_REALTIME_MODEL = "mine"
    with (models_dir / "mine" / "config.json").open("a") as handle:
        handle.write(" ")

    with pytest.raises(CommandError, match="failed verification"):
        run("verify", "realtime")


def test_verify_says_a_model_copied_by_hand_has_no_checksums(model_dir, models_dir, settings):
    shutil.copytree(model_dir, models_dir / "copied")
    settings.SCRIBE_BATCH_MODEL = "copied"
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("models", "verify", "batch", stdout=io.StringIO(), stderr=err)
    assert "no checksums are recorded" in err.getvalue()
    assert "models import" in err.getvalue()


def test_it_refuses_a_bundle_without_a_model_and_leaves_nothing_behind(models_dir, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "README").write_text("weights go here")

    with pytest.raises(CommandError, match="holds no CTranslate2 Whisper model"):
        run("import", str(empty))
    assert list(models_dir.iterdir()) == []


def test_it_refuses_to_overwrite_a_model_without_replace(model_dir, models_dir):
    run("import", str(model_dir), "--name", "m")
    with pytest.raises(CommandError, match="--replace"):
        run("import", str(model_dir), "--name", "m")
    run("import", str(model_dir), "--name", "m", "--replace")


def test_fetch_offline_refuses_with_what_to_do(models_dir):
    with pytest.raises(CommandError) as caught:
        run("fetch", "large-v3")

    message = str(caught.value)
    assert "offline" in message and "nothing is downloaded" in message
    assert str(models_dir / "large-v3") in message


def test_list_marks_a_lane_whose_model_is_missing(model_dir, models_dir, settings):
    settings.SCRIBE_BATCH_MODEL = str(model_dir)
    settings.SCRIBE_REALTIME_MODEL = "large-v3-turbo"

    listed, _ = run("list")

    assert f"batch     {model_dir}: {model_dir}" in listed
    assert "realtime  large-v3-turbo: MISSING" in listed


def test_list_names_the_english_model_a_package_put_on_disk_and_how_to_try_it(
    models_dir, settings, real_model_dir
):
    settings.SCRIBE_BATCH_MODEL = "large-v3"

    listed, _ = run("list")

    assert "batch     large-v3: MISSING" in listed  # offered, not put in the lane
    assert "also on disk: tiny.en (English only, from the realmodel extra" in listed
    assert f"manage.py transcribe FILE --model {real_model_dir}" in listed


def worker_env(tmp_path: Path, **models: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SCRIBE_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "SCRIBE_MODELS_DIR": str(tmp_path / "models"),
        "HF_HUB_OFFLINE": "1",
        **models,
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize(
    ("command", "lane"), [(["qcluster"], "batch"), (["runworker", "realtime"], "realtime")]
)
def test_a_worker_refuses_to_start_without_its_model_and_says_which(
    tmp_path, model_dir, command, lane
):
    models = {"SCRIBE_BATCH_MODEL": str(model_dir), "SCRIBE_REALTIME_MODEL": str(model_dir)}
    models[f"SCRIBE_{lane.upper()}_MODEL"] = "large-v3"
    result = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=REPO_ROOT,
        env=worker_env(tmp_path, **models),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"The {lane} worker has no model to load" in result.stderr
    assert f"manage.py models fetch {lane}" in result.stderr
