"""Reads of the job app: a job's place in the queue, the queue at a glance, the system."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_q.status import Stat

from realtime.status import realtime_workers
from scribe.metrics import loaded_models
from transcription.engine import EngineError, ModelNotFoundError, detect_hardware, resolve_model
from transcription.lanes import LANES, device_plan_build, lane_model_name
from transcription.models import Job

# Sections other apps add to ``system_status`` from their ``AppConfig.ready`` (the notes
# queue): name -> a read of their own; this app does not import theirs.
SYSTEM_SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {}


def job_queue_position(*, job: Job) -> int:
    """Number of queued jobs that will be taken before this one."""
    return Job.objects.ahead_of(job).count()


def queue_summary() -> dict[str, Any]:
    """Counts of waiting and running jobs, and how long the oldest has waited."""
    oldest = Job.objects.queued().order_by("created_at").values_list("created_at", flat=True)
    first = oldest.first()
    return {
        "queued": Job.objects.queued().count(),
        "processing": Job.objects.processing().count(),
        "oldest_queued_age_sec": round((timezone.now() - first).total_seconds(), 1)
        if first
        else None,
        "max_queued": settings.SCRIBE_MAX_QUEUED_JOBS,
    }


def system_status() -> dict[str, Any]:
    """What an operator needs at a glance: hardware, plan, workers, queue, models."""
    profile = detect_hardware()
    status: dict[str, Any] = {
        "device": dataclasses.asdict(profile),
        "free_vram_mb": {f"cuda:{g.index}": g.free_vram_mb for g in profile.gpus},
        "queue": queue_summary(),
    }
    try:
        plan = device_plan_build(model=lane_model_name("batch"), profile=profile)
        status["plan"] = {**dataclasses.asdict(plan), "total_workers": plan.total_workers}
    except EngineError as exc:
        status["plan"] = {"error": exc.message}
    status["workers"] = {
        "batch_clusters": _batch_clusters(),
        "busy": [
            {"host": host, "pid": pid}
            for host, pid in Job.objects.processing()
            .values_list("worker_host", "worker_pid")
            .distinct()
        ],
        "realtime": {
            "in_web_process": settings.SCRIBE_REALTIME_IN_PROCESS,
            "channel": settings.SCRIBE_REALTIME_CHANNEL,
            "workers": realtime_workers(),
        },
    }
    status["models"] = {"lanes": _lane_models(), "loaded": loaded_models()}
    for name, read in SYSTEM_SECTIONS.items():
        status[name] = read()
    return status


def _batch_clusters() -> list[dict[str, Any]]:
    try:
        # Cluster statistics live in the broker's cache: shared with Redis, per process
        # (so invisible here) with the embedded ORM broker.
        return [
            {
                "cluster_id": str(stat.cluster_id),
                "host": stat.host,
                "status": stat.status,
                "workers": len(stat.workers),
                "uptime_s": round(stat.uptime(), 1),
            }
            for stat in Stat.get_all()
        ]
    except Exception as exc:  # the broker is down: say so, keep the rest of the page
        return [{"error": f"cluster statistics unavailable: {exc}"}]


def _lane_models() -> list[dict[str, Any]]:
    lanes = []
    for lane in LANES:
        name = lane_model_name(lane)
        try:
            path: str | None = str(
                resolve_model(name, models_dir=settings.SCRIBE_MODELS_DIR, offline=True).path
            )
            problem = None
        except ModelNotFoundError as exc:
            path, problem = None, exc.message
        lanes.append({"lane": lane, "model": name, "path": path, "problem": problem})
    return lanes
