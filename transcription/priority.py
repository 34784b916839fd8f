"""Streams before batch: batch workers wait while the realtime worker on their device lags.

The realtime worker reports its backlog after every scheduler tick
(``realtime_backlog_report``): how much audio its sessions have waiting beyond one step.
A batch job on the same device (same host, same "cuda:N" or "cpu") checks that report
between segments (``BatchTurn``) and, while it is set, waits in short sleeps, at most
``MAX_WAIT_S`` per segment, so live decoding gets the device back and batch work never
starves. SCRIBE_REALTIME_PRIORITY=false turns it off.

The report lives in the "coordination" cache: Redis in the production topology, files
under var/ in the embedded one, so a qcluster worker sees the web process's report. It
expires by itself (``BACKLOG_TTL_S``): a realtime worker that dies leaves no stale flag.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import caches

from scribe.processes import this_host

logger = logging.getLogger(__name__)

BACKLOG_TTL_S = 3  # a report not renewed by a later tick is gone after this
POLL_S = 0.05  # how often a waiting batch job looks again
MAX_WAIT_S = 5.0  # per segment: live streams go first, batch work still moves
CHECK_INTERVAL_S = 0.25  # between two looks of a running batch job at the report


def _key(device: str) -> str:
    return f"realtime-backlog:{this_host()}:{device}"


def realtime_backlog_report(*, device: str, backlog_s: float) -> None:
    """Say how many seconds of audio the realtime worker on ``device`` has waiting beyond
    its next step; 0 says it keeps up (and clears the report)."""
    cache = caches["coordination"]
    if backlog_s > 0:
        cache.set(_key(device), round(backlog_s, 3), timeout=BACKLOG_TTL_S)
    else:
        cache.delete(_key(device))


def realtime_backlog_s(*, device: str) -> float:
    """The realtime backlog reported for ``device`` on this host, 0.0 when none."""
    return float(caches["coordination"].get(_key(device)) or 0.0)


class BatchTurn:
    """A batch job's ``wait_turn``: between segments, wait while live streams lag.

    Counts what it waited (``waited_s``, ``waits``) for logs and benchmarks.
    """

    def __init__(self) -> None:
        self.waited_s = 0.0
        self.waits = 0
        self._last_check = 0.0
        self._warned = False

    def __call__(self, device: str) -> None:
        if not settings.SCRIBE_REALTIME_PRIORITY:
            return
        now = time.monotonic()
        if now - self._last_check < CHECK_INTERVAL_S:
            return
        try:
            if realtime_backlog_s(device=device) > 0:
                self.waits += 1
                while time.monotonic() - now < MAX_WAIT_S:
                    time.sleep(POLL_S)
                    if realtime_backlog_s(device=device) <= 0:
                        break
                self.waited_s += time.monotonic() - now
        except Exception as exc:  # a signal, not state: a cache outage must not stop a job
            if not self._warned:
                self._warned = True
                logger.warning("realtime priority unavailable (%s); batch runs unpaused", exc)
        self._last_check = time.monotonic()
