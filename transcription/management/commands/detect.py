"""manage.py detect: the hardware scribe sees and how it would run each model lane."""

from __future__ import annotations

import dataclasses
import json

from django.core.management.base import BaseCommand, CommandError

from transcription.engine import DevicePlan, DevicePlanError, HardwareProfile, detect_hardware
from transcription.engine.devices import GpuBudget
from transcription.lanes import device_lanes_build


def _gb(mb: float | None) -> str:
    return "?" if mb is None else f"{mb / 1024:.1f} GB"


class Command(BaseCommand):
    help = "Show the CPUs, RAM and CUDA devices scribe sees, and its device plan per model lane."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        parser.add_argument("--device", help="plan for auto, cpu, cuda or cuda:N")
        parser.add_argument("--compute-type", help="plan for this compute type")
        parser.add_argument("--workers", type=int, help="plan for this many workers per device")

    def handle(self, *args, **options):
        profile = detect_hardware()
        try:
            # Both lanes share each GPU: planned together, as the workers plan them.
            lanes = device_lanes_build(
                device=options["device"],
                compute_type=options["compute_type"],
                workers=options["workers"],
                profile=profile,
            )
        except DevicePlanError as exc:
            raise CommandError(exc.message) from None
        plans: dict[str, DevicePlan] = {"batch": lanes.batch}
        if lanes.realtime is not None:
            plans["realtime"] = lanes.realtime
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "hardware": dataclasses.asdict(profile),
                        "cuda_device_count": len(profile.gpus),
                        "plans": {lane: dataclasses.asdict(plan) for lane, plan in plans.items()},
                        "gpu_budgets": [dataclasses.asdict(b) for b in lanes.gpus],
                        "realtime_sessions_planned": lanes.realtime_sessions,
                    },
                    indent=2,
                )
            )
            return
        self._print_hardware(profile)
        for lane, plan in plans.items():
            self._print_plan(lane, plan)
        if lanes.realtime is None:
            self.stdout.write("\nThe realtime lane is not planned on this host (SCRIBE_LANES).")
        self._print_budgets(lanes.gpus, lanes.realtime_sessions)

    def _print_hardware(self, profile: HardwareProfile) -> None:
        out = self.stdout.write
        out("Hardware")
        out(
            f"  CPU: {profile.cpu_cores} cores, RAM {_gb(profile.ram_total_mb)} total, "
            f"{_gb(profile.ram_available_mb)} available"
        )
        out(f"  CPU compute types: {', '.join(profile.cpu_compute_types)}")
        if not profile.gpus:
            out("  CUDA devices: none")
        for gpu in profile.gpus:
            cc = ".".join(map(str, gpu.compute_capability)) if gpu.compute_capability else "?"
            out(
                f"  cuda:{gpu.index}: {gpu.name}, compute capability {cc}, VRAM "
                f"{_gb(gpu.free_vram_mb)} free of {_gb(gpu.total_vram_mb)}, "
                f"types {', '.join(gpu.compute_types)}"
            )
        for note in profile.notes:
            out(f"  note: {note}")

    def _print_budgets(self, budgets: tuple[GpuBudget, ...], sessions: int) -> None:
        out = self.stdout.write
        for b in budgets:
            out("")
            out(
                f"VRAM of cuda:{b.index} ({b.name}): {_gb(b.total_mb)} total, {_gb(b.free_mb)} free"
            )
            out(f"  realtime worker (model + {sessions} live sessions): ~{_gb(b.realtime_mb)}")
            out(f"  batch workers: ~{_gb(b.batch_mb)}")
            out(f"  kept free: {_gb(b.reserve_mb)}")
            out(f"  planned: ~{_gb(b.planned_mb)} of {_gb(b.free_mb)} free")

    def _print_plan(self, lane: str, plan: DevicePlan) -> None:
        out = self.stdout.write
        out("")
        out(
            f"Plan for the {lane} lane: model {plan.model} "
            f"(device {plan.device_requested}, compute type {plan.compute_type_requested})"
        )
        for a in plan.assignments:
            out(
                f"  {a.name}: {a.workers} worker(s) x {a.cpu_threads} CPU thread(s), "
                f"{a.compute_type}, ~{_gb(a.footprint_mb)} per worker ({a.footprint_source})"
            )
        for reason in plan.reasons:
            out(f"  - {reason}")
