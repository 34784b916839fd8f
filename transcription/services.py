"""Services of the transcription app: from settings and overrides to a loaded model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.conf import settings

from transcription.engine import (
    DevicePlan,
    HardwareProfile,
    LoadedModel,
    detect_hardware,
    model_manager,
    model_size,
    plan_devices,
)

LANES = ("batch", "realtime")


def lane_model_name(lane: str) -> str:
    """Return the model configured for a lane: ``batch`` (accuracy) or ``realtime``."""
    if lane == "batch":
        return settings.SCRIBE_BATCH_MODEL
    if lane == "realtime":
        return settings.SCRIBE_REALTIME_MODEL
    raise ValueError(f"unknown lane {lane!r}: use one of {', '.join(LANES)}")


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
) -> DevicePlan:
    """Plan devices for ``model`` from the hardware, settings and command-line overrides."""
    overrides = overrides or DeviceOverrides()
    return plan_devices(
        profile or detect_hardware(),
        model_size(model, models_dir=settings.SCRIBE_MODELS_DIR),
        device=overrides.device or settings.SCRIBE_DEVICE,
        compute_type=overrides.compute_type or settings.SCRIBE_COMPUTE_TYPE,
        workers=overrides.workers or settings.SCRIBE_WORKERS,
        cpu_threads=overrides.cpu_threads or settings.SCRIBE_CPU_THREADS,
        max_workers_per_gpu=settings.SCRIBE_MAX_WORKERS_PER_GPU,
    )


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
    )
    # Report what the operator asked for ("auto", "float16"…) beside what runs.
    return dataclasses.replace(loaded, compute_type_requested=plan.compute_type_requested)
