"""Prometheus metrics at ``/metrics``, summed over every scribe process of this host.

Worker processes (qcluster's forked workers, the realtime worker) record into files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode); the web process reads
them all when scraped. ``manage.py serve`` sets that directory for its children; in other
deployments set it to an empty directory shared by a host's processes and emptied when
they start. Without it each process only reports its own. Queue depth and jobs by status
are read from the database at scrape time, so they are right whichever process asks.

``/metrics`` needs a key with the ``admin`` scope (Prometheus: ``authorization:
credentials: KEY``) unless ``SCRIBE_METRICS_PUBLIC`` is on.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from scribe.processes import pid_alive

JOB_DURATION = Histogram(
    "scribe_job_duration_seconds",
    "Wall time of finished jobs, from the worker taking them to their end",
    ["status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
)
REAL_TIME_FACTOR = Histogram(
    "scribe_job_real_time_factor",
    "Processing time / audio duration of completed file jobs",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5),
)
DEGRADATIONS = Counter(
    "scribe_degradations_total",
    "Models that ran below the planned precision or device after running out of memory",
    ["lane"],
)
ACTIVE_STREAMS = Gauge(
    "scribe_active_streams", "Live sessions open on realtime workers", multiprocess_mode="livesum"
)
STREAM_LAG = Gauge(
    "scribe_stream_lag_seconds",
    "Audio received but not yet decoded, for the most behind live session",
    multiprocess_mode="livemax",
)
MODEL_LOADED = Gauge(
    "scribe_model_loaded",
    "Models loaded by this host's processes (1 per process and model)",
    ["lane", "model", "device", "compute_type"],
    multiprocess_mode="liveall",
)

_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


# --- recording (any process) ------------------------------------------------------------


def job_finished(*, status: str, duration_s: float | None, metrics: dict) -> None:
    if duration_s is not None:
        JOB_DURATION.labels(status=status).observe(max(0.0, duration_s))
    rtf = metrics.get("real_time_factor")
    if status == "completed" and isinstance(rtf, int | float) and metrics.get("audio_duration_s"):
        REAL_TIME_FACTOR.observe(rtf)


def model_loaded(*, lane: str, model: str, device: str, compute_type: str, degraded: bool) -> None:
    """A worker loaded its model; ``degraded``: out of memory made it step down."""
    MODEL_LOADED.labels(lane=lane, model=model, device=device, compute_type=compute_type).set(1)
    if degraded:
        DEGRADATIONS.labels(lane=lane).inc()


def streams_observed(*, sessions: int, lag_s: float) -> None:
    ACTIVE_STREAMS.set(sessions)
    STREAM_LAG.set(lag_s)


# --- reading (the web process) ------------------------------------------------------------


def _multiproc_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def forget_dead_processes() -> None:
    """Drop the live gauges of processes that have exited (a recycled or killed worker)."""
    directory = _multiproc_dir()
    if directory is None or not directory.is_dir():
        return
    pids = {int(m.group(1)) for p in directory.iterdir() if (m := _LIVE_FILE.match(p.name))}
    for pid in pids:
        if not pid_alive(pid):
            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(pid, str(directory))


class _ProcessLocal:
    """This process's own metrics, when there is no multiprocess directory."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class _Database:
    """Queue depth and jobs by status, counted when scraped."""

    def collect(self) -> Iterator[Metric]:
        from transcription.models import Job

        counts = dict(Job.objects.values_list("status").annotate(n=Count("id")).order_by())
        by_status = GaugeMetricFamily("scribe_jobs", "Jobs by status", labels=["status"])
        for status in Job.Status.values:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily(
            "scribe_queue_depth",
            "Jobs waiting for a batch worker",
            value=counts.get(Job.Status.QUEUED, 0),
        )


def registry() -> CollectorRegistry:
    collectors = CollectorRegistry()
    if _multiproc_dir() is not None:
        forget_dead_processes()
        multiprocess.MultiProcessCollector(collectors)
    else:
        collectors.register(_ProcessLocal())
    collectors.register(_Database())
    return collectors


def loaded_models() -> list[dict[str, Any]]:
    """The models this host's processes hold, from their live gauges."""
    rows = []
    for metric in registry().collect():
        if metric.name != "scribe_model_loaded":
            continue
        for sample in metric.samples:
            if sample.value:
                rows.append(dict(sample.labels))
    return rows


class _AnyAccept(BaseContentNegotiation):
    """Prometheus asks for OpenMetrics or text; the view answers text either way."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


class MetricsView(APIView):
    """Prometheus exposition: admin-scoped, or public with SCRIBE_METRICS_PUBLIC."""

    required_scope = "admin"
    content_negotiation_class = _AnyAccept
    throttle_classes: list = []  # a scraper every 15 s must never be throttled

    def get_authenticators(self):
        return [] if settings.SCRIBE_METRICS_PUBLIC else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if settings.SCRIBE_METRICS_PUBLIC else super().get_permissions()

    @extend_schema(exclude=True)  # Prometheus text, not part of the JSON API
    def get(self, request):
        return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
