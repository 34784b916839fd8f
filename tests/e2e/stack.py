"""Run scribe's production topology for end-to-end tests: real processes on loopback.

A fresh PostgreSQL database per stack, migrated by ``manage.py migrate``; daphne serving
the ASGI app; ``manage.py qcluster`` running the batch workers. Everything is torn down
(process groups killed, database dropped) when the stack closes.

With ``hosts``, each process runs on a simulated machine of its own (``Host``): its own
host name, media root, temporary and models directories, in a private mount namespace
where every other host's directories are empty and read-only. The hosts share only the
network services (PostgreSQL, Redis, the bucket), so a path that works only because two
processes share a disk fails instead of passing by accident.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from scribe.web import daphne_arguments
from tests.conftest import REPO_ROOT

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def redis_url() -> str:
    """The loopback Redis, on a database number of its own, so parallel runs and other
    tests do not share queues."""
    return f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daphne_command(port: int) -> list[str]:
    """The web process as production runs it, on loopback."""
    return [sys.executable, "-m", "daphne", *daphne_arguments("127.0.0.1", port)]


@contextlib.contextmanager
def daphne_serving(env: dict[str, str], log_path: Path):
    """daphne on a free loopback port with ``env``; yield the port once it answers HTTP."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            daphne_command(port),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
                    break
                assert process.poll() is None, log_path.read_text()
                time.sleep(0.2)
            yield port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)


def sqlite_environment(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of a scribe on a migrated SQLite database under ``tmp_path``, with
    no Redis (the realtime worker runs inside daphne)."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")
    }
    environ.update(
        SCRIBE_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        SCRIBE_MEDIA_ROOT=str(tmp_path / "media"),
        SCRIBE_MODELS_DIR=str(tmp_path / "models"),
        HF_HUB_OFFLINE="1",
        **env,
    )
    manage(environ, "migrate", "-v0")
    return environ


def manage(env: dict[str, str], *args: str, root: Path = REPO_ROOT, timeout: int = 120) -> str:
    """Run ``manage.py`` of the checkout at ``root`` with ``env``; its standard output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr}")
    return result.stdout


@contextlib.contextmanager
def sqlite_daphne(tmp_path: Path, **env: str):
    """daphne serving scribe's ASGI app on loopback over a migrated SQLite database (the
    embedded default, no worker); yield ``(port, environment)``."""
    environ = sqlite_environment(tmp_path, **env)
    with daphne_serving(environ, tmp_path / "daphne.log") as port:
        yield port, environ


def api_key(environ: dict[str, str], *scopes: str) -> str:
    """A new API key with ``scopes``, made by ``manage.py create_api_key`` in ``environ``."""
    created = manage(environ, "create_api_key", "--owner", "e2e", "--scopes", *scopes)
    return created.strip().splitlines()[-1]


@dataclass(frozen=True)
class Host:
    """A simulated machine: what scribe keeps on a host's own disk lives under ``root``."""

    name: str
    root: Path

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def create(self) -> Host:
        for directory in (self.root, self.media, self.tmp, self.root / "models"):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
        return self

    def environment(self) -> dict[str, str]:
        return {
            "SCRIBE_HOSTNAME": self.name,
            "SCRIBE_MEDIA_ROOT": str(self.media),
            "SCRIBE_MODELS_DIR": str(self.root / "models"),
            "TMPDIR": str(self.tmp),
        }

    def files(self) -> list[Path]:
        """Every file on this host's media root and in its temporary directory."""
        return [p for d in (self.media, self.tmp) for p in d.rglob("*") if p.is_file()]


def hiding(command: Sequence[str], hidden: Sequence[Path]) -> list[str]:
    """``command`` in a private mount namespace where each directory of ``hidden`` is an
    empty, read-only tmpfs (root reads everything: mounts, not permissions, hide them)."""
    script = (
        'while [ "$1" != -- ]; do mount -t tmpfs -o ro,size=4k hidden "$1" || exit 97; '
        'shift; done; shift; exec "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        *map(str, hidden),
        "--",
        *command,
    ]


class Stack:
    def __init__(
        self,
        tmp: Path,
        model_dir: Path,
        *,
        batch_workers: bool = True,
        realtime_worker: bool = False,
        notes_workers: bool = False,
        root: Path = REPO_ROOT,
        hosts: Sequence[str] = (),
        **env: str,
    ) -> None:
        """``root``: the checkout whose code runs (a benchmark compares another commit).
        ``hosts``: names of simulated machines; daphne runs on the first, a qcluster on
        each of the others (with ``batch_workers``)."""
        self.batch_workers, self.realtime_worker = batch_workers, realtime_worker
        self.notes_workers = notes_workers
        self.root = root
        self.hosts = {name: Host(name, tmp / "hosts" / name).create() for name in hosts}
        self.on_host: dict[str, list[subprocess.Popen]] = {name: [] for name in hosts}
        self.database = f"scribe_e2e_{uuid.uuid4().hex[:10]}"
        self.database_url = f"postgresql://postgres@127.0.0.1:5432/{self.database}"
        self.media = tmp / "media"
        self.port = free_port()
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SCRIBE_MEDIA_ROOT": str(self.media),
            "SCRIBE_MODELS_DIR": str(tmp / "models"),
            "SCRIBE_BATCH_MODEL": str(model_dir),
            "SCRIBE_REALTIME_MODEL": str(model_dir),
            "SCRIBE_DEVICE": "cpu",
            "SCRIBE_CPU_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            **env,
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.processes: list[subprocess.Popen] = []
        self.base_url = f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        return manage(self.env, *args, root=self.root)

    def spawn(self, name: str, *args: str, host: str | None = None) -> subprocess.Popen:
        """Start ``args`` as ``name`` (its log: logs/NAME.log), on ``host`` if given."""
        env, command = self.env, list(args)
        if host is not None:
            env = {**env, **self.hosts[host].environment()}
            others = [h.root for other, h in self.hosts.items() if other != host]
            command = hiding(command, others)
        log = (self.logs / f"{name}.log").open("a")
        process = subprocess.Popen(
            command,
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        if host is not None:
            self.on_host[host].append(process)
        return process

    def run_on(self, host: str, *args: str) -> subprocess.CompletedProcess:
        """Run ``args`` to its end on ``host``: as the host's processes see the disks."""
        others = [h.root for other, h in self.hosts.items() if other != host]
        return subprocess.run(
            hiding(args, others),
            cwd=self.root,
            env={**self.env, **self.hosts[host].environment()},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_batch_workers(self, host: str) -> subprocess.Popen:
        return self.spawn(f"qcluster-{host}", sys.executable, "manage.py", "qcluster", host=host)

    def kill_host(self, host: str) -> None:
        """SIGKILL every process of ``host`` at once: the machine is lost."""
        for process in self.on_host[host]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.on_host[host]:
            process.wait(timeout=15)
        self.on_host[host] = []

    def __enter__(self) -> Stack:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        try:
            self.manage("migrate", "--no-input")
            self.key = self.manage("create_api_key", "--owner", "e2e").strip()
            web, *workers = list(self.hosts) or [None]
            self.spawn("daphne", *daphne_command(self.port), host=web)
            if self.batch_workers and self.hosts:
                for host in workers:
                    self.start_batch_workers(host)
            elif self.batch_workers:
                self.spawn("qcluster", sys.executable, "manage.py", "qcluster")
            if self.realtime_worker:
                self.spawn("runworker", sys.executable, "manage.py", "runworker", "realtime")
            if self.notes_workers:
                self.spawn("notes", sys.executable, "manage.py", "qcluster", "--name", "notes")
            self.wait_until_live()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def wait_until_live(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health/live", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"daphne did not come up: {self.log('daphne')}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {self.key}"}
        )

    def sql(self, query: str, *params):
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def connections(self) -> dict[str, int]:
        """Server connections to this stack's database, by application (scribe-web, …)."""
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE datname = %s GROUP BY application_name",
                (self.database,),
            ).fetchall()
        return dict(rows)

    def refuse_connections(self, refuse: bool = True) -> None:
        """Make PostgreSQL refuse (or accept again) this stack's database, ending its
        sessions: what a server restart or an outage looks like to scribe."""
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {not refuse}')
            if refuse:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (self.database,),
                )

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
