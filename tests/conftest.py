"""Fixtures shared by every test: the offline random-weight model, real and made media."""

from __future__ import annotations

import os

# Tests never touch the network; set before anything imports huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"

import json
import socket
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from tests.media import write_tone_wav
from transcription.engine.testmodel import build_test_model

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"
IN_CI = os.environ.get("CI", "").lower() == "true"


def shared_clip(name: str) -> Path:
    """Return a clip from ../shared/audio, skipping the test when it is absent."""
    path = SHARED_AUDIO / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared is not checked out beside the repo)")
    return path


def result_body(response) -> bytes:
    """A job result's body from the test client: the json as stored is streamed (an
    asynchronous iterator, as daphne sends it), the other formats are rendered."""
    if not response.streaming:
        return response.content

    async def collect(chunks) -> bytes:
        return b"".join([chunk async for chunk in chunks])

    return async_to_sync(collect)(response.streaming_content)


def result_json(response) -> dict:
    return json.loads(result_body(response))


def require_service(host: str, port: int, what: str) -> None:
    """Skip when a loopback service is down — except in CI, where that is a failure."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        message = f"{what} is not reachable on {host}:{port} ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Test on a SQLite file, as the embedded default runs, not Django's in-memory database.

    The in-memory test database shares one cache between threads, where a reader's table
    lock fails a worker thread's write at once ("database table is locked") instead of
    waiting out the busy timeout as a file in WAL mode does.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(
            tmp_path_factory.mktemp("database") / "test.sqlite3"
        )


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Each test starts with empty rate-limit counters: every request comes from 127.0.0.1,
    so the refusals of earlier tests would otherwise count against its address. Only the
    in-process cache is cleared (clearing a Redis cache would flush a whole database)."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """Whisper tiny.en from the realmodel extra: skipped without it, a failure in CI."""
    from tests.realmodel import missing_real_model_message, real_model_dir

    found = real_model_dir()
    if found is None:
        if IN_CI:
            pytest.fail(missing_real_model_message())
        pytest.skip(missing_real_model_message())
    return found


@pytest.fixture(scope="session")
def tiny_en(real_model_dir, tmp_path_factory):
    """tiny.en loaded once per session: int8 on 2 CPU threads, as the figures are measured."""
    from transcription.engine import model_manager

    return model_manager.get(
        str(real_model_dir),
        models_dir=tmp_path_factory.mktemp("real-footprints"),
        offline=True,
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A micro random-weight Whisper model in CTranslate2 format, built once per session."""
    return build_test_model(tmp_path_factory.mktemp("models") / "micro", size="micro")


@pytest.fixture
def models_dir(tmp_path, settings) -> Path:
    """An empty models directory, set as SCRIBE_MODELS_DIR so nothing touches var/."""
    target = tmp_path / "models"
    target.mkdir()
    settings.SCRIBE_MODELS_DIR = target
    settings.SCRIBE_OFFLINE = True
    return target


@pytest.fixture
def loaded_model(model_dir, tmp_path_factory):
    from transcription.engine import model_manager

    return model_manager.get(
        str(model_dir),
        models_dir=tmp_path_factory.getbasetemp() / "footprints",
        offline=True,
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )


@pytest.fixture
def jfk() -> Path:
    return shared_clip("jfk.flac")


@pytest.fixture
def tone_wav(tmp_path) -> Path:
    """Three seconds of a 440 Hz tone at 44.1 kHz stereo: media that needs no ../shared."""
    return write_tone_wav(tmp_path / "tone.wav", seconds=3.0, rate=44100, channels=2)


@pytest.fixture
def job_settings(settings, tmp_path, model_dir):
    """Embedded job settings on a temporary media root, with the test model as batch model."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.SCRIBE_BATCH_MODEL = str(model_dir)
    settings.SCRIBE_MODELS_DIR = tmp_path / "models"
    settings.SCRIBE_OFFLINE = True
    settings.SCRIBE_DEVICE = "cpu"
    settings.SCRIBE_CPU_THREADS = 2
    return settings


@pytest.fixture
def owner_key(db):
    """An owner with a transcribe-scoped key: (key, secret)."""
    from accounts.services import api_key_create

    return api_key_create(owner_name="billing-service", scopes=["transcribe"])


@pytest.fixture
def api(owner_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner_key[1]}")
    return client


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on loopback, one per session (skipped without moto, except in CI)."""
    from tests.s3 import require_moto, s3_server

    require_moto()
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as endpoint_url:
        yield endpoint_url


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh, empty bucket on the loopback S3 server, deleted after the test."""
    from tests.s3 import fresh_bucket

    with fresh_bucket(s3_endpoint) as bucket:
        yield bucket


@pytest.fixture
def s3_job_settings(job_settings, s3_bucket):
    """``job_settings`` with the default storage in ``s3_bucket`` (SCRIBE_STORAGE=s3)."""
    job_settings.STORAGES = {**job_settings.STORAGES, "default": s3_bucket.storage()}
    return job_settings


@pytest.fixture(autouse=True)
def shipped_templates(request):
    """The notes templates and keyword categories a migration installs: tests that flush
    the database (transaction=True) would otherwise lose them after the first."""
    if request.node.get_closest_marker("django_db") is None and not any(
        name in request.fixturenames for name in ("db", "transactional_db")
    ):
        yield
        return
    from notes.models import KeywordCategory, Template
    from notes.shipped import shipped_install

    request.getfixturevalue("_django_db_helper")  # the database, as the test asked for it
    shipped_install(Template, KeywordCategory)
    yield
