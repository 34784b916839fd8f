"""Each realtime worker's setup, where every process can read it: a row per worker.

A realtime worker (``manage.py runworker realtime``, one per GPU, or the web process itself
on the embedded defaults) measures at start-up how many live sessions it can serve; the web
process, which answers ``/v1/system``, cannot see that. So each worker writes its setup to
the database once warmed up and refreshes the row while it lives, from a thread of its own
(an idle worker is alive too); a row not refreshed within SCRIBE_STALE_AFTER_S, or whose
process is gone from this host, is dropped when read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from realtime.capacity import Capacity
from realtime.models import RealtimeWorker
from scribe.db import unit_of_work
from scribe.processes import pid_alive, this_host
from transcription.engine import LoadedModel

logger = logging.getLogger(__name__)

_beat_lock = threading.Lock()
_beats: dict[int, threading.Thread] = {}  # pid -> its refresh thread


def realtime_worker_report(*, model: LoadedModel, capacity: Capacity, session_cap: int) -> None:
    """Record this worker's setup (its warm-up has measured ``capacity``) and keep the row
    fresh while the process lives. A database that fails now is tried again by the refresh."""
    setup = {
        "model": model.name,
        "device": "cpu" if model.device == "cpu" else f"cuda:{model.device_index}",
        "compute_type": model.compute_type,
        "measured_sessions": capacity.sessions,
        "session_cap": session_cap,
        "batch_size": capacity.max_batch(settings.SCRIBE_REALTIME_MAX_BATCH),
    }
    try:
        with unit_of_work():
            _row_write(setup, refresh_only=False)
    except Exception as exc:  # the refresh writes it once the database answers
        logger.warning("realtime worker status not written (%s)", exc)
    with _beat_lock:
        beat = _beats.get(os.getpid())
        if beat is None or not beat.is_alive():
            beat = threading.Thread(
                target=_refresh, args=(setup,), name="realtime-status", daemon=True
            )
            _beats[os.getpid()] = beat
            beat.start()


def _row_write(setup: dict[str, Any], *, refresh_only: bool) -> None:
    host, pid, now = this_host(), os.getpid(), timezone.now()
    if refresh_only and RealtimeWorker.objects.filter(host=host, pid=pid).update(seen_at=now):
        return
    # First report, or the row was dropped while the worker could not refresh it.
    RealtimeWorker.objects.update_or_create(host=host, pid=pid, defaults={**setup, "seen_at": now})


def _refresh(setup: dict[str, Any]) -> None:
    failing = False
    while True:  # as long as the process lives
        time.sleep(settings.SCRIBE_HEARTBEAT_S)
        try:
            with unit_of_work():
                _row_write(setup, refresh_only=True)
            failing = False
        except Exception as exc:  # the next refresh tries again; said once per outage
            if not failing:
                logger.warning("realtime worker status not refreshed (%s)", exc)
            failing = True


def realtime_workers() -> list[dict[str, Any]]:
    """The realtime workers alive now, with their setups; rows of workers that stopped
    refreshing theirs, or whose process is gone from this host, are deleted."""
    stale_before = timezone.now() - timedelta(seconds=settings.SCRIBE_STALE_AFTER_S)
    host = this_host()
    alive: list[RealtimeWorker] = []
    gone: list[RealtimeWorker] = []
    for row in RealtimeWorker.objects.all():
        dead_here = row.host == host and not pid_alive(row.pid)
        (gone if dead_here or row.seen_at < stale_before else alive).append(row)
    if gone:
        RealtimeWorker.objects.filter(pk__in=[row.pk for row in gone]).delete()
    return [
        {
            "host": row.host,
            "pid": row.pid,
            "model": row.model,
            "device": row.device,
            "compute_type": row.compute_type,
            "measured_sessions": row.measured_sessions,
            "session_cap": row.session_cap,
            "batch_size": row.batch_size,
            "started_at": row.started_at,
            "seen_at": row.seen_at,
        }
        for row in alive
    ]
