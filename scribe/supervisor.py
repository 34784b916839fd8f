"""A small process-group supervisor for `manage.py serve`: start children, stop them all.

Each child runs in a session of its own, so stopping it reaches its own children too
(qcluster forks its workers) and a Ctrl-C in the terminal reaches only the supervisor,
which then stops every child in order. When one child dies the group stops and says
which one and how: a crash loop restarted in the background would hide the cause, and
whatever started `serve` (a terminal, systemd, a notebook cell) decides what to do next.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

STOP_TIMEOUT_S = 30.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    stop_signal: int = signal.SIGTERM
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def describe_exit(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"


class ProcessGroup:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.children: list[Child] = []
        self.stopping = threading.Event()

    def start(
        self,
        name: str,
        args: Sequence[str],
        *,
        stop_signal: int = signal.SIGTERM,
        on_line: Callable[[Child, str], None] | None = None,
    ) -> Child:
        """Start a child; with ``on_line``, its output is read line by line instead of shown."""
        process = subprocess.Popen(
            list(args),
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE if on_line else None,
            stderr=subprocess.STDOUT if on_line else None,
            text=True if on_line else None,
            bufsize=1 if on_line else -1,
        )
        child = Child(name, process, stop_signal)
        self.children.append(child)
        if on_line is not None:
            threading.Thread(
                target=self._read, args=(child, on_line), name=f"{name}-output", daemon=True
            ).start()
        return child

    @staticmethod
    def _read(child: Child, on_line: Callable[[Child, str], None]) -> None:
        assert child.process.stdout is not None
        for line in child.process.stdout:
            child.tail.append(line.rstrip())
            on_line(child, line.rstrip())

    def dead(self) -> Child | None:
        """The first child that has ended, if any."""
        return next((c for c in self.children if not c.alive), None)

    def wait(self, poll_s: float = 0.5) -> Child | None:
        """Block until a stop is asked for (None) or a child ends (that child)."""
        while not self.stopping.is_set():
            ended = self.dead()
            if ended is not None:
                return ended
            self.stopping.wait(poll_s)
        return None

    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        self.stopping.set()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Signal every child, last started first; kill what outlives it, its group too.

        Only the child itself is signalled: it stops its own children in order (qcluster
        waits for its workers), which a signal to the whole group at once would race.
        """
        for child in reversed(self.children):
            if child.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, child.stop_signal)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The group may outlive its leader (a worker the leader forked): end it too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
