"""Both lanes on one host share one VRAM plan (issue 16), on recorded machine profiles.

The realtime worker (large-v3-turbo plus the working memory of the live sessions it decodes
together) is placed first; the batch workers (large-v3) get what is left. Whatever the
card, the lanes together never plan more than its free VRAM less the reserve.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.transcription.test_device_policy import (
    CPU_ONLY_2_CORES,
    GTX_1050_DESKTOP,
    H100_SERVER,
    L4_SERVER,
    LARGE_V3,
    LARGE_V3_TURBO,
    RTX_2060_DESKTOP,
    T4_SERVER,
    TWO_T4_SERVER,
    machine,
    rtx_3090,
)
from transcription.engine.devices import (
    REALTIME_SESSION_WORKING_MB,
    ModelSize,
    plan_devices,
    plan_lanes,
)

RTX_3090_DESKTOP = machine(rtx_3090(), cores=16, ram_total_mb=65536, ram_available_mb=60000)

PROFILES = {
    "t4-16gb": T4_SERVER,
    "l4-24gb": L4_SERVER,
    "rtx-3090": RTX_3090_DESKTOP,
    "h100": H100_SERVER,
    "gtx-1050": GTX_1050_DESKTOP,
    "cpu-only": CPU_ONLY_2_CORES,
    "rtx-2060-6gb": RTX_2060_DESKTOP,
    "two-t4": TWO_T4_SERVER,
}


def planned_vram_mb(lanes, index: int) -> float:
    """What the plan puts on GPU ``index``, added up from the assignments themselves."""
    total = 0.0
    for plan in (lanes.batch, lanes.realtime):
        for a in plan.assignments if plan else ():
            if a.device == "cuda" and a.index == index:
                total += a.workers * a.footprint_mb
    return total


@pytest.mark.parametrize("workers_cap", [None, 2, 8])
@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_both_lanes_together_never_plan_more_than_the_cards_free_vram(profile, workers_cap):
    lanes = plan_lanes(profile, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=workers_cap)

    for gpu, budget in zip(profile.gpus, lanes.gpus, strict=True):
        planned = planned_vram_mb(lanes, gpu.index)
        assert planned == pytest.approx(budget.planned_mb)
        assert planned + budget.reserve_mb <= gpu.free_vram_mb <= gpu.total_vram_mb
    assert lanes.batch.total_workers >= 1
    assert lanes.realtime is not None and lanes.realtime.total_workers == len(
        [a for a in lanes.realtime.assignments]
    )


def test_a_t4_holds_the_realtime_worker_and_one_float16_batch_worker():
    lanes = plan_lanes(T4_SERVER, LARGE_V3, LARGE_V3_TURBO)

    assert lanes.realtime is not None
    assert [(a.name, a.compute_type, a.workers) for a in lanes.realtime.assignments] == [
        ("cuda:0", "float16", 1)
    ]
    assert [(a.name, a.compute_type, a.workers) for a in lanes.batch.assignments] == [
        ("cuda:0", "float16", 1)
    ]
    turbo_with_sessions = 809e6 * 3 / 2**20 + 8 * REALTIME_SESSION_WORKING_MB
    assert lanes.gpus[0].realtime_mb == pytest.approx(turbo_with_sessions)
    assert lanes.batch.reasons[0].startswith(
        "cuda:0: ~3.8 GB kept for the realtime worker (large-v3-turbo and 8 live sessions"
    )


def test_the_realtime_share_leaves_a_t4_fewer_batch_workers_than_batch_alone():
    alone = plan_devices(T4_SERVER, LARGE_V3, max_workers_per_gpu=8)
    shared = plan_lanes(T4_SERVER, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=8)

    # 13.8 GB usable holds three 4.3 GB workers; 10.0 GB after the realtime share, two.
    assert (alone.primary.workers, shared.batch.primary.workers) == (3, 2)


def test_a_6_gb_card_serves_live_streams_and_sends_the_batch_lane_to_the_cpu():
    lanes = plan_lanes(RTX_2060_DESKTOP, LARGE_V3, LARGE_V3_TURBO)

    assert lanes.realtime is not None and lanes.realtime.primary.name == "cuda:0"
    assert [(a.name, a.compute_type) for a in lanes.batch.assignments] == [("cpu", "int8")]
    assert lanes.batch.model == "large-v3"  # never swapped for a smaller model
    assert "degraded device: large-v3 runs on the CPU" in lanes.batch.reasons


def test_a_batch_only_host_gives_the_batch_lane_the_whole_card():
    lanes = plan_lanes(RTX_2060_DESKTOP, LARGE_V3, None)

    assert lanes.realtime is None
    assert [(a.name, a.compute_type) for a in lanes.batch.assignments] == [("cuda:0", "float16")]
    assert lanes.gpus[0].realtime_mb == 0.0


def test_a_gtx_1050_runs_both_lanes_on_the_cpu_and_the_batch_lane_counts_the_realtime_ram():
    profile = machine(GTX_1050_DESKTOP.gpus[0], cores=4, ram_total_mb=12288, ram_available_mb=9000)

    lanes = plan_lanes(profile, LARGE_V3, LARGE_V3_TURBO)

    assert lanes.realtime is not None
    assert [a.device for a in lanes.realtime.assignments] == ["cpu"]
    assert [a.device for a in lanes.batch.assignments] == ["cpu"]
    assert lanes.gpus[0].planned_mb == 0.0
    # RAM left after the realtime worker holds one large-v3 worker, not the two alone.
    assert plan_devices(profile, LARGE_V3, cpu_threads=2).primary.workers == 2
    shared = plan_lanes(profile, LARGE_V3, LARGE_V3_TURBO, cpu_threads=2)
    assert shared.batch.primary.workers == 1


def test_the_cpu_only_machine_plans_both_lanes_on_the_cpu():
    lanes = plan_lanes(CPU_ONLY_2_CORES, LARGE_V3, LARGE_V3_TURBO)

    assert lanes.gpus == ()
    assert lanes.realtime is not None
    assert [(a.device, a.workers) for a in lanes.realtime.assignments] == [("cpu", 1)]
    assert [(a.device, a.compute_type) for a in lanes.batch.assignments] == [("cpu", "int8")]


def test_one_batch_worker_per_gpu_by_default_and_a_measured_footprint_allows_more():
    measured = ModelSize("large-v3", 1550, measured_mb={"cuda|float16": 3500.0})

    estimated = plan_lanes(H100_SERVER, LARGE_V3, LARGE_V3_TURBO)
    from_measure = plan_lanes(H100_SERVER, measured, LARGE_V3_TURBO)
    capped = plan_lanes(H100_SERVER, measured, LARGE_V3_TURBO, max_workers_per_gpu=2)

    assert estimated.batch.primary.workers == 1
    assert (from_measure.batch.primary.workers, from_measure.batch.primary.footprint_source) == (
        4,
        "measured",
    )
    assert capped.batch.primary.workers == 2


def test_a_measured_footprint_allows_only_what_fits_beside_the_realtime_worker():
    measured = ModelSize("large-v3", 1550, measured_mb={"cuda|float16": 4600.0})

    lanes = plan_lanes(L4_SERVER, measured, LARGE_V3_TURBO)

    # 21.5 GB usable - 3.8 GB realtime = 17.7 GB: three workers of 4.5 GB, under the cap of 4.
    assert lanes.batch.primary.workers == 3
    budget = lanes.gpus[0]
    assert budget.planned_mb + budget.reserve_mb <= L4_SERVER.gpus[0].free_vram_mb


def test_the_plan_is_the_same_before_and_after_the_realtime_worker_loads():
    before = plan_lanes(T4_SERVER, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=8)
    held = before.gpus[0].realtime_mb
    gpu = T4_SERVER.gpus[0]
    loaded = machine(
        type(gpu)(
            gpu.index,
            gpu.name,
            gpu.compute_capability,
            gpu.total_vram_mb,
            int(gpu.free_vram_mb - held),
            gpu.compute_types,
        ),
        cores=T4_SERVER.cpu_cores,
        ram_total_mb=T4_SERVER.ram_total_mb,
        ram_available_mb=T4_SERVER.ram_available_mb,
    )

    counted_twice = plan_lanes(loaded, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=8)
    after = plan_lanes(
        loaded, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=8, realtime_held_mb={0: held}
    )

    assert counted_twice.batch.primary.workers == 1
    assert after.batch.primary.workers == before.batch.primary.workers == 2


def test_a_diarization_model_is_planned_beside_each_batch_worker():
    without = plan_lanes(L4_SERVER, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=8)
    with_it = plan_lanes(
        L4_SERVER, LARGE_V3, LARGE_V3_TURBO, max_workers_per_gpu=8, diarization_mb=1500.0
    )

    assert with_it.batch.primary.footprint_mb == pytest.approx(
        without.batch.primary.footprint_mb + 1500.0
    )
    assert with_it.batch.primary.workers < without.batch.primary.workers
    budget = with_it.gpus[0]
    assert budget.planned_mb + budget.reserve_mb <= L4_SERVER.gpus[0].free_vram_mb


def test_fewer_planned_sessions_leave_more_room_for_batch_workers():
    many = plan_lanes(T4_SERVER, LARGE_V3, LARGE_V3_TURBO, realtime_sessions=32)
    few = plan_lanes(T4_SERVER, LARGE_V3, LARGE_V3_TURBO, realtime_sessions=2)

    assert many.gpus[0].realtime_mb - few.gpus[0].realtime_mb == pytest.approx(
        30 * REALTIME_SESSION_WORKING_MB
    )


def test_two_t4s_get_a_realtime_worker_each():
    lanes = plan_lanes(TWO_T4_SERVER, LARGE_V3, LARGE_V3_TURBO)

    assert lanes.realtime is not None
    assert [a.name for a in lanes.realtime.assignments] == ["cuda:0", "cuda:1"]
    assert [b.realtime_mb > 0 for b in lanes.gpus] == [True, True]


def test_detect_shows_both_lanes_and_a_batch_only_host_shows_one(settings, models_dir):
    def detect(*args: str) -> str:
        out = StringIO()
        call_command("detect", *args, stdout=out)
        return out.getvalue()

    both = json.loads(detect("--json"))
    text = detect()
    settings.SCRIBE_LANES = ["batch"]
    batch_only = json.loads(detect("--json"))

    assert set(both["plans"]) == {"batch", "realtime"}
    assert both["realtime_sessions_planned"] == 8
    assert len(both["gpu_budgets"]) == both["cuda_device_count"]
    assert "Plan for the batch lane" in text and "Plan for the realtime lane" in text
    assert set(batch_only["plans"]) == {"batch"}
