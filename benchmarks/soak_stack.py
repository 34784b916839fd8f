"""The processes ``soak.py`` runs and breaks: its own redis-server, the production
topology started as separate processes under a small restarting supervisor, a loopback
webhook receiver, and the RSS of every process.

The supervisor does what compose's ``restart: unless-stopped`` or systemd's
``Restart=always`` does: a child that dies is started again after a second. The soak
kills the realtime worker on purpose; any other death is reported as unplanned.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from tests.conftest import REPO_ROOT
from tests.e2e.stack import daphne_command, free_port

RESTART_DELAY_S = 1.0


class Redis:
    """A redis-server of the soak's own, on a free loopback port, configured as the compose
    file runs it (append-only, fsync every second, never evict), so it can be killed and
    started again on the same data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        log = (self.directory / f"redis-{self.starts}.log").open("w")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
                "--save",
                "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: what an OOM kill or a node drain does; the append-only file stays."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pids(self) -> list[int]:
        alive = self.process is not None and self.process.poll() is None
        return [self.process.pid] if alive and self.process else []


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    starts: int = 0
    started_at: float = 0.0


@dataclass
class Death:
    name: str
    at: float  # time.monotonic()
    how: str
    planned: bool


class Supervisor:
    """Start the named children, restart any that dies, and say which died and how."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: dict[str, Child] = {}
        self.deaths: list[Death] = []
        self.planned: set[int] = set()  # pids the soak kills itself
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def add(self, name: str, args: list[str]) -> None:
        self.children[name] = Child(name, args)
        self._spawn(self.children[name])

    def start_watching(self) -> None:
        self.thread.start()

    def log_path(self, name: str, start: int | None = None) -> Path:
        child = self.children[name]
        return self.logs / f"{name}-{start or child.starts}.log"

    def log(self, name: str, start: int | None = None) -> str:
        path = self.log_path(name, start)
        return path.read_text(errors="replace") if path.is_file() else ""

    def _spawn(self, child: Child) -> None:
        child.starts += 1
        log = self.log_path(child.name).open("w")
        child.process = subprocess.Popen(
            child.args,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.started_at = time.monotonic()

    def sigkill(self, name: str) -> int:
        """SIGKILL a child (its process only, as the OOM killer picks one); return its pid."""
        child = self.children[name]
        assert child.process is not None
        with self.lock:
            self.planned.add(child.process.pid)
            os.kill(child.process.pid, signal.SIGKILL)
        return child.process.pid

    def _watch(self) -> None:
        while not self.stopping.wait(0.2):
            for child in list(self.children.values()):
                process = child.process
                if process is None or process.poll() is None:
                    continue
                code = process.returncode
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
                with self.lock:
                    planned = process.pid in self.planned
                # The group may outlive its leader (qcluster's forked workers): end it too.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                self.deaths.append(Death(child.name, time.monotonic(), how, planned))
                print(
                    f"  [supervisor] {child.name} (pid {process.pid}) {how}"
                    f"{'' if planned else ' (UNPLANNED)'}; starting it again in "
                    f"{RESTART_DELAY_S:.0f} s",
                    flush=True,
                )
                if self.stopping.wait(RESTART_DELAY_S):
                    return
                self._spawn(child)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        for child in reversed(list(self.children.values())):
            if child.process is not None and child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGTERM)
        for child in reversed(list(self.children.values())):
            if child.process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()

    def pid(self, name: str) -> int | None:
        child = self.children.get(name)
        if child is None or child.process is None or child.process.poll() is not None:
            return None
        return child.process.pid


def production_processes(supervisor: Supervisor, port: int) -> None:
    """The processes production runs, each on its own (docs/operations.md, "Serving")."""
    supervisor.add("daphne", daphne_command(port))
    supervisor.add("qcluster", [sys.executable, "manage.py", "qcluster"])
    supervisor.add("runworker", [sys.executable, "manage.py", "runworker", "realtime"])


# --- the webhook receiver ----------------------------------------------------------------


@dataclass
class Hook:
    at: float  # time.monotonic()
    delivery: str
    event: str
    job_id: str
    status: str
    signed: bool


@dataclass
class Receiver:
    """A loopback HTTP server that takes every callback (200), checks its signature and
    records it; a receiver dedupes on ``Scribe-Delivery`` (docs/api.md, "Webhooks")."""

    secret: str = ""
    hooks: list[Hook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(body, self.headers)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def record(self, body: bytes, headers) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        hook = Hook(
            at=time.monotonic(),
            delivery=headers.get("Scribe-Delivery", ""),
            event=headers.get("Scribe-Event", ""),
            job_id=str(data.get("job_id", "")),
            status=str(data.get("status", "")),
            signed=self.verify(body, headers.get("Scribe-Signature", "")),
        )
        with self.lock:
            self.hooks.append(hook)

    def verify(self, body: bytes, header: str) -> bool:
        """The receiver's check of docs/api.md: HMAC-SHA256 of ``"<t>." + body``."""
        items = [item.strip().partition("=") for item in header.split(",")]
        stamps = [value for key, _, value in items if key == "t"]
        if len(stamps) != 1:
            return False
        signed = f"{stamps[0]}.".encode() + body
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        return any(hmac.compare_digest(expected, v) for key, _, v in items if key == "v1")

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()


# --- memory ---------------------------------------------------------------------------


def tree_rss_mb(pid: int | None) -> tuple[float, int]:
    """RSS of a process and its children in MB, and how many processes that is."""
    if pid is None:
        return 0.0, 0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 1e6, len(processes)


def rss_sample(roles: dict[str, Callable[[], int | None]]) -> dict[str, dict[str, float]]:
    """RSS per role (the process and its children) now."""
    sample = {}
    for role, pid_of in roles.items():
        pid = pid_of()
        mb, count = tree_rss_mb(pid)
        sample[role] = {"pid": pid or 0, "rss_mb": round(mb, 1), "processes": count}
    return sample
