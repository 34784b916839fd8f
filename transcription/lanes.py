"""Lanes: the batch lane (jobs, accuracy first) and the realtime lane (live sessions).

The one home of the concept: the lanes and their models, this host's device plan for both
(the batch workers of `manage.py qcluster` and the realtime worker share its GPUs, so they
are planned together: the realtime worker with its model and the memory of the live
sessions it decodes together, the batch workers in what is left), each worker's slot in
that plan, and loading a lane's model there. Every process computes the same plan from the
same hardware and settings, then takes its own part of it: a realtime worker the realtime
lane, a batch worker one slot of the batch lane (``worker_slot``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from transcription.engine import (
    DevicePlan,
    HardwareProfile,
    LoadedModel,
    detect_hardware,
    model_manager,
    model_served_name,
    model_size,
)
from transcription.engine.devices import LanePlan, plan_lanes

LANES = ("batch", "realtime")

# Live sessions a realtime worker is planned to decode together when the operator sets no
# cap: the batch its start-up measurement allows on a GPU (realtime/capacity.py).
REALTIME_PLANNED_SESSIONS = 8


def lane_model_name(lane: str) -> str:
    """Return the model configured for a lane: ``batch`` (accuracy) or ``realtime``."""
    if lane == "batch":
        return settings.SCRIBE_BATCH_MODEL
    if lane == "realtime":
        return settings.SCRIBE_REALTIME_MODEL
    raise ValueError(f"unknown lane {lane!r}: use one of {', '.join(LANES)}")


def lane_model_served_name(lane: str) -> str:
    """The name callers see for a lane's model: a local directory's path stays private."""
    return model_served_name(lane_model_name(lane))


def model_configured(name: str) -> str:
    """The model a request's ``model`` stands for: a lane (``batch``), the served name of a
    lane's model (``tiny.en`` for a directory that holds it) or, else, the name itself."""
    for lane in LANES:
        if name in (lane, lane_model_served_name(lane)):
            return lane_model_name(lane)
    return name


def configured_lanes() -> tuple[str, ...]:
    """The lanes this host serves (SCRIBE_LANES), in LANES order."""
    return tuple(lane for lane in LANES if lane in settings.SCRIBE_LANES)


def realtime_planned_sessions() -> int:
    """Live sessions a realtime worker decodes together, whose memory the plan holds: the
    operator's cap, else the most the worker admits by default."""
    return settings.SCRIBE_REALTIME_MAX_SESSIONS or REALTIME_PLANNED_SESSIONS


def diarization_vram_mb() -> float:
    """VRAM a batch worker holds for a diarization model beside its Whisper model.

    Where this deployment diarizes (SCRIBE_DIARIZATION), any batch worker may load the
    pyannote pipeline when a job asks: its footprint measured on this machine (after the
    first diarization on a GPU), else an estimate. Zero where diarization is off.
    """
    if not settings.SCRIBE_DIARIZATION:
        return 0.0
    from transcription.engine.diarization import diarization_footprint_mb

    megabytes, _source = diarization_footprint_mb(
        settings.SCRIBE_DIARIZATION_MODEL, models_dir=settings.SCRIBE_MODELS_DIR, device="cuda"
    )
    return megabytes


def device_lanes_build(
    *,
    batch_model: str | None = None,
    device: str | None = None,
    compute_type: str | None = None,
    workers: int | None = None,
    cpu_threads: int | None = None,
    profile: HardwareProfile | None = None,
    realtime: bool | None = None,
) -> LanePlan:
    """Plan both lanes of this host from its hardware, the settings and overrides.

    ``batch_model`` replaces the configured batch model (a job's chosen model);
    ``realtime`` None plans the realtime lane when SCRIBE_LANES lists it.
    """
    with_realtime = "realtime" in settings.SCRIBE_LANES if realtime is None else realtime
    models_dir = settings.SCRIBE_MODELS_DIR
    return plan_lanes(
        profile or detect_hardware(),
        model_size(batch_model or settings.SCRIBE_BATCH_MODEL, models_dir=models_dir),
        model_size(settings.SCRIBE_REALTIME_MODEL, models_dir=models_dir)
        if with_realtime
        else None,
        device=device or settings.SCRIBE_DEVICE,
        compute_type=compute_type or settings.SCRIBE_COMPUTE_TYPE,
        workers=workers or settings.SCRIBE_WORKERS,
        cpu_threads=cpu_threads or settings.SCRIBE_CPU_THREADS,
        max_workers_per_gpu=settings.SCRIBE_MAX_WORKERS_PER_GPU,
        realtime_sessions=realtime_planned_sessions(),
        diarization_mb=diarization_vram_mb(),
    )


@dataclass(frozen=True)
class DeviceOverrides:
    device: str | None = None
    compute_type: str | None = None
    workers: int | None = None
    cpu_threads: int | None = None


def device_plan_build(
    *,
    model: str,
    overrides: DeviceOverrides | None = None,
    profile: HardwareProfile | None = None,
    lane: str = "batch",
) -> DevicePlan:
    """Plan devices for ``model`` in ``lane`` from the hardware, settings and command-line
    overrides, sharing each GPU with the other lane (``device_lanes_build``)."""
    overrides = overrides or DeviceOverrides()
    lanes = device_lanes_build(
        batch_model=model if lane == "batch" else None,
        device=overrides.device,
        compute_type=overrides.compute_type,
        workers=overrides.workers,
        cpu_threads=overrides.cpu_threads,
        profile=profile,
        realtime=True if lane == "realtime" else None,
    )
    plan = lanes.batch if lane == "batch" else lanes.realtime
    assert plan is not None  # the realtime lane is planned when asked for
    return plan


def model_load(*, model: str, plan: DevicePlan, slot: int = 0) -> LoadedModel:
    """Load ``model`` for worker ``slot`` of ``plan`` (slots are spread over its devices)."""
    slots = [a for a in plan.assignments for _ in range(a.workers)]
    assignment = slots[slot % len(slots)]
    loaded = model_manager.get(
        model,
        models_dir=settings.SCRIBE_MODELS_DIR,
        offline=settings.SCRIBE_OFFLINE,
        device=assignment.device,
        device_index=assignment.index,
        compute_type=assignment.compute_type,
        cpu_threads=assignment.cpu_threads,
        # A worker keeps what its share of the plan holds: on a GPU one model of this size.
        max_loaded=settings.SCRIBE_MAX_LOADED_MODELS,
        footprint_mb=assignment.footprint_mb,
        vram_budget_mb=assignment.footprint_mb,
    )
    # Report what the operator asked for ("auto", "float16"…) beside what runs.
    return dataclasses.replace(loaded, compute_type_requested=plan.compute_type_requested)


# --- worker slots -------------------------------------------------------------------------

_held: dict[str, tuple[int, int, IO[str]]] = {}  # kind -> (pid, slot, locked file)


def slot_dir() -> Path:
    return Path(settings.VAR_DIR) / "run"


def worker_slot(*, kind: str, count: int) -> int:
    """This process's slot among the ``count`` workers of ``kind`` on this host.

    django-q2 names its worker processes ``Process-<random uuid>`` and multiprocessing's
    counter grows with every respawn, so neither is a slot: after a worker is replaced, two
    live workers could share one. Instead each worker takes the lowest slot no live process
    holds, as an exclusive lock on a file, and keeps it until it exits; the kernel releases
    the lock of a killed worker, so its replacement takes the same slot (and GPU).
    """
    held = _held.get(kind)
    if held is not None and held[0] == os.getpid():
        return held[1] % max(1, count)
    # Forked from a process that held a slot: that lock is the parent's, not ours.
    directory = slot_dir()
    directory.mkdir(parents=True, exist_ok=True)
    slot = 0
    while True:  # more processes than planned slots take slots past the plan (wrapped)
        handle = (directory / f"{settings.SCRIBE_DEPLOYMENT}-{kind}-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            slot += 1
            continue
        _held[kind] = (os.getpid(), slot, handle)
        return slot % max(1, count)


def worker_slot_release(*, kind: str) -> None:
    """Give this process's slot back (a worker that stops serving the lane)."""
    held = _held.pop(kind, None)
    if held is not None and held[0] == os.getpid():
        held[2].close()
