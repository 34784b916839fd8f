"""Device policy (requirement 2) on recorded profiles of machines we do not have.

``plan_devices()`` is pure, so each machine is written down as CTranslate2 and nvidia-smi
report it: compute types per device, total and free VRAM in MiB (free a little below total,
as a driver and display leave it), CPU cores and RAM. Footprints follow the module's
estimate: large-v3 (1550 M params) needs ~4.3 GB per worker at float16 and ~2.9 GB at the
int8 types.
"""

from __future__ import annotations

import pytest

from transcription.engine.devices import DeviceAssignment, ModelSize, plan_devices
from transcription.engine.errors import DevicePlanError
from transcription.engine.hardware import GpuInfo, HardwareProfile

# Compute types as ctranslate2.get_supported_compute_types() reports them.
CPU_TYPES = ("float32", "int16", "int8", "int8_float32")
PASCAL_TYPES = ("float32", "int8", "int8_float32")
TURING_TYPES = ("float32", "float16", "int8", "int8_float16", "int8_float32")
AMPERE_AND_LATER_TYPES = (
    "float32",
    "float16",
    "bfloat16",
    "int8",
    "int8_float16",
    "int8_bfloat16",
    "int8_float32",
)

LARGE_V3 = ModelSize("large-v3", 1550)
LARGE_V3_TURBO = ModelSize("large-v3-turbo", 809)
SMALL = ModelSize("small", 244)

LARGE_V3_FLOAT16_MB = 1550e6 * 3 / (1024 * 1024)
LARGE_V3_INT8_MB = 1550e6 * 2 / (1024 * 1024)


def gtx_1050(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA GeForce GTX 1050", (6, 1), 2048, 1962, PASCAL_TYPES)


def gtx_1650(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA GeForce GTX 1650", (7, 5), 4096, 3900, TURING_TYPES)


def rtx_2060(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA GeForce RTX 2060", (7, 5), 6144, 5880, TURING_TYPES)


def t4(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "Tesla T4", (7, 5), 15360, 14930, TURING_TYPES)


def l4(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA L4", (8, 9), 23034, 22563, AMPERE_AND_LATER_TYPES)


def rtx_3090(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA GeForce RTX 3090", (8, 6), 24576, 23800, AMPERE_AND_LATER_TYPES)


def a100_80gb(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA A100 80GB PCIe", (8, 0), 81920, 81050, AMPERE_AND_LATER_TYPES)


def h100_80gb(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA H100 80GB HBM3", (9, 0), 81559, 80600, AMPERE_AND_LATER_TYPES)


def h200(index: int = 0) -> GpuInfo:
    return GpuInfo(index, "NVIDIA H200", (9, 0), 143771, 142900, AMPERE_AND_LATER_TYPES)


def machine(
    *gpus: GpuInfo,
    cores: int = 8,
    ram_total_mb: int = 32768,
    ram_available_mb: int = 30000,
    notes: tuple[str, ...] = (),
) -> HardwareProfile:
    return HardwareProfile(
        cpu_cores=cores,
        ram_total_mb=ram_total_mb,
        ram_available_mb=ram_available_mb,
        cpu_compute_types=CPU_TYPES,
        gpus=gpus,
        notes=notes,
    )


CPU_ONLY_2_CORES = machine(cores=2, ram_total_mb=24576, ram_available_mb=22000)
GTX_1050_DESKTOP = machine(gtx_1050(), cores=4, ram_total_mb=16384, ram_available_mb=13000)
GTX_1650_LAPTOP = machine(gtx_1650(), cores=4, ram_total_mb=8192, ram_available_mb=6000)
RTX_2060_DESKTOP = machine(rtx_2060(), cores=8, ram_total_mb=16384, ram_available_mb=14000)
T4_SERVER = machine(t4(), cores=8, ram_total_mb=30720, ram_available_mb=28000)
L4_SERVER = machine(l4(), cores=8, ram_total_mb=32768, ram_available_mb=30000)
A100_SERVER = machine(a100_80gb(), cores=12, ram_total_mb=174080, ram_available_mb=168000)
H100_SERVER = machine(h100_80gb(), cores=26, ram_total_mb=239616, ram_available_mb=232000)
H200_SERVER = machine(h200(), cores=16, ram_total_mb=131072, ram_available_mb=126000)
TWO_T4_SERVER = machine(t4(0), t4(1), cores=16, ram_total_mb=61440, ram_available_mb=58000)
RTX_3090_WITH_GTX_1050 = machine(
    rtx_3090(0), gtx_1050(1), cores=16, ram_total_mb=65536, ram_available_mb=60000
)


# --- auto on a single GPU -----------------------------------------------------------


@pytest.mark.parametrize(
    "profile",
    [T4_SERVER, L4_SERVER, A100_SERVER, H100_SERVER, H200_SERVER],
    ids=["t4", "l4", "a100", "h100", "h200"],
)
def test_it_picks_float16_on_every_gpu_of_compute_capability_7_or_more(profile):
    plan = plan_devices(profile, LARGE_V3)

    assert [(a.name, a.compute_type) for a in plan.assignments] == [("cuda:0", "float16")]
    assert plan.reasons == ()


def test_it_runs_large_v3_in_float16_with_one_worker_of_four_threads_on_a_t4():
    plan = plan_devices(T4_SERVER, LARGE_V3)

    assert plan.model == "large-v3"
    assert plan.device_requested == "auto"
    assert plan.compute_type_requested == "auto"
    assert plan.assignments == (
        DeviceAssignment(
            device="cuda",
            index=0,
            compute_type="float16",
            workers=1,
            cpu_threads=4,
            footprint_mb=pytest.approx(LARGE_V3_FLOAT16_MB),
            footprint_source="estimated",
        ),
    )


def test_it_degrades_to_int8_float16_when_a_4_gb_turing_card_cannot_hold_float16():
    plan = plan_devices(GTX_1650_LAPTOP, LARGE_V3)

    assert plan.primary.name == "cuda:0"
    assert plan.primary.compute_type == "int8_float16"
    assert plan.primary.workers == 1
    assert plan.reasons == (
        "cuda:0 (NVIDIA GeForce GTX 1650): float16 needs ~4.3 GB per worker, 3.3 GB usable: "
        "degraded precision to int8_float16",
    )


def test_it_keeps_large_v3_turbo_in_float16_on_a_4_gb_turing_card():
    plan = plan_devices(GTX_1650_LAPTOP, LARGE_V3_TURBO)

    assert (plan.primary.name, plan.primary.compute_type, plan.primary.workers) == (
        "cuda:0",
        "float16",
        1,
    )
    assert plan.reasons == ()


def test_it_runs_large_v3_on_the_cpu_when_a_gtx_1050_cannot_hold_it():
    plan = plan_devices(GTX_1050_DESKTOP, LARGE_V3)

    assert plan.model == "large-v3"
    assert plan.assignments == (
        DeviceAssignment(
            device="cpu",
            index=0,
            compute_type="int8",
            workers=1,
            cpu_threads=4,
            footprint_mb=pytest.approx(LARGE_V3_INT8_MB),
            footprint_source="estimated",
        ),
    )
    assert plan.reasons == (
        "cuda:0 (NVIDIA GeForce GTX 1050): large-v3 needs ~2.9 GB even at int8, only 1.4 GB "
        "usable: not using this GPU (the model is never swapped for a smaller one)",
        "degraded device: large-v3 runs on the CPU",
    )


def test_it_keeps_a_small_model_on_the_gtx_1050_in_int8():
    plan = plan_devices(GTX_1050_DESKTOP, SMALL)

    assert [(a.name, a.compute_type, a.workers) for a in plan.assignments] == [
        ("cuda:0", "int8", 1)
    ]
    assert plan.reasons == ()


def test_it_assumes_the_model_fits_once_when_nvidia_smi_could_not_report_vram():
    unknown = GpuInfo(0, "unknown CUDA device", None, None, None, TURING_TYPES)
    profile = machine(unknown, notes=("nvidia-smi not found: VRAM and compute capability unknown",))

    plan = plan_devices(profile, LARGE_V3)

    assert (plan.primary.name, plan.primary.compute_type, plan.primary.workers) == (
        "cuda:0",
        "float16",
        1,
    )
    assert plan.reasons == (
        "cuda:0 (unknown CUDA device): free VRAM or model size unknown; assuming large-v3 fits",
    )


# --- workers from VRAM --------------------------------------------------------------


def test_it_gives_a_4_3_gb_model_one_worker_on_a_6_gb_card():
    plan = plan_devices(RTX_2060_DESKTOP, LARGE_V3, max_workers_per_gpu=8)

    assert (plan.primary.compute_type, plan.primary.workers) == ("float16", 1)


@pytest.mark.parametrize("profile", [A100_SERVER, H100_SERVER], ids=["a100", "h100"])
def test_it_gives_a_4_3_gb_model_the_worker_cap_on_an_80_gb_card(profile):
    assert plan_devices(profile, LARGE_V3, max_workers_per_gpu=2).primary.workers == 2
    assert plan_devices(profile, LARGE_V3, max_workers_per_gpu=8).primary.workers == 8


def test_raising_the_worker_cap_gives_an_h200_more_workers_than_a_t4():
    on_h200 = plan_devices(H200_SERVER, LARGE_V3, max_workers_per_gpu=64)
    on_t4 = plan_devices(T4_SERVER, LARGE_V3, max_workers_per_gpu=64)

    # 135.7 GB usable / 4.3 GB against 13.8 GB usable / 4.3 GB.
    assert (on_h200.primary.workers, on_t4.primary.workers) == (30, 3)


def test_a_measured_float16_footprint_too_big_for_the_card_degrades_to_int8_float16():
    measured = ModelSize("large-v3", 1550, measured_mb={"cuda|float16": 5600.0})

    estimated_plan = plan_devices(RTX_2060_DESKTOP, LARGE_V3)
    measured_plan = plan_devices(RTX_2060_DESKTOP, measured)

    assert estimated_plan.primary.compute_type == "float16"
    assert measured_plan.primary.compute_type == "int8_float16"
    assert measured_plan.reasons == (
        "cuda:0 (NVIDIA GeForce RTX 2060): float16 needs ~5.5 GB per worker, 5.2 GB usable: "
        "degraded precision to int8_float16",
    )


def test_a_measured_footprint_sets_the_worker_count_instead_of_the_estimate():
    measured = ModelSize("large-v3", 1550, measured_mb={"cuda|float16": 6500.0})

    estimated_plan = plan_devices(L4_SERVER, LARGE_V3, max_workers_per_gpu=8)
    measured_plan = plan_devices(L4_SERVER, measured, max_workers_per_gpu=8)

    assert (estimated_plan.primary.workers, estimated_plan.primary.footprint_source) == (
        4,
        "estimated",
    )
    assert measured_plan.primary.workers == 3
    assert measured_plan.primary.footprint_mb == 6500.0
    assert measured_plan.primary.footprint_source == "measured"


# --- several GPUs -------------------------------------------------------------------


def test_it_plans_one_assignment_per_gpu_on_a_machine_with_two_t4s():
    plan = plan_devices(TWO_T4_SERVER, LARGE_V3)

    assert [(a.name, a.compute_type, a.workers, a.cpu_threads) for a in plan.assignments] == [
        ("cuda:0", "float16", 1, 4),
        ("cuda:1", "float16", 1, 4),
    ]
    assert plan.total_workers == 2


def test_it_skips_a_gpu_too_small_for_the_model_and_keeps_the_other():
    plan = plan_devices(RTX_3090_WITH_GTX_1050, LARGE_V3)

    assert [(a.name, a.compute_type, a.workers) for a in plan.assignments] == [
        ("cuda:0", "float16", 1)
    ]
    assert plan.reasons == (
        "cuda:1 (NVIDIA GeForce GTX 1050): large-v3 needs ~2.9 GB even at int8, only 1.4 GB "
        "usable: not using this GPU (the model is never swapped for a smaller one)",
    )


def test_gpu_workers_share_the_cpu_cores_for_their_threads():
    on_h200 = plan_devices(H200_SERVER, LARGE_V3, max_workers_per_gpu=64)

    # 16 cores among 30 workers: never zero threads.
    assert on_h200.primary.cpu_threads == 1
    assert plan_devices(GTX_1650_LAPTOP, LARGE_V3).primary.cpu_threads == 4


# --- forced device ------------------------------------------------------------------


def test_forcing_cpu_on_a_gpu_machine_plans_int8_on_the_cpu():
    plan = plan_devices(T4_SERVER, LARGE_V3, device="cpu")

    assert plan.device_requested == "cpu"
    assert [(a.name, a.compute_type, a.workers, a.cpu_threads) for a in plan.assignments] == [
        ("cpu", "int8", 2, 4)
    ]
    assert plan.reasons == ()


def test_forcing_cuda_uses_every_gpu():
    plan = plan_devices(TWO_T4_SERVER, LARGE_V3, device="cuda")

    assert [a.name for a in plan.assignments] == ["cuda:0", "cuda:1"]


def test_forcing_cuda_1_plans_only_the_second_gpu():
    plan = plan_devices(TWO_T4_SERVER, LARGE_V3, device="cuda:1")

    assert [(a.device, a.index, a.compute_type, a.workers) for a in plan.assignments] == [
        ("cuda", 1, "float16", 1)
    ]


def test_forcing_cuda_1_runs_there_as_asked_even_when_the_model_may_not_fit():
    plan = plan_devices(RTX_3090_WITH_GTX_1050, LARGE_V3_TURBO, device="cuda:1")

    assert [(a.name, a.compute_type, a.workers) for a in plan.assignments] == [
        ("cuda:1", "int8", 1)
    ]
    assert plan.reasons == (
        "cuda:1 (NVIDIA GeForce GTX 1050): large-v3-turbo needs ~1.5 GB at int8 but only "
        "1.4 GB is usable; running there as asked, it may run out of memory",
    )


def test_forcing_cuda_5_on_a_two_gpu_machine_says_which_devices_exist():
    with pytest.raises(DevicePlanError) as raised:
        plan_devices(TWO_T4_SERVER, LARGE_V3, device="cuda:5")

    assert raised.value.message == (
        "device 'cuda:5' does not exist: this machine has 2 CUDA device(s), cuda:0 to cuda:1."
    )
    assert raised.value.permanent is True


def test_forcing_cuda_on_a_cpu_only_machine_says_no_cuda_device_is_visible():
    with pytest.raises(DevicePlanError) as raised:
        plan_devices(CPU_ONLY_2_CORES, LARGE_V3, device="cuda")

    assert raised.value.message == (
        "device 'cuda' was asked for, but CTranslate2 sees no CUDA device "
        "(no GPU or no CUDA driver). Use --device auto or cpu, or check the driver with "
        "nvidia-smi."
    )


def test_forcing_cuda_0_on_a_cpu_only_machine_repeats_what_detection_noted():
    profile = machine(notes=("CUDA unavailable: CUDA driver version is insufficient",))

    with pytest.raises(DevicePlanError, match="CUDA driver version is insufficient"):
        plan_devices(profile, LARGE_V3, device="cuda:0")


def test_an_unknown_device_name_is_refused_with_the_names_that_exist():
    with pytest.raises(DevicePlanError) as raised:
        plan_devices(T4_SERVER, LARGE_V3, device="gpu")

    assert raised.value.message == "device 'gpu' is not one of auto, cpu, cuda, cuda:N."


# --- forced compute type ------------------------------------------------------------


def test_forcing_float16_on_the_cpu_runs_int8_and_says_why():
    plan = plan_devices(CPU_ONLY_2_CORES, LARGE_V3, compute_type="float16")

    assert plan.compute_type_requested == "float16"
    assert plan.primary.compute_type == "int8"
    assert plan.reasons == (
        "float16 is not supported on cpu (supported: float32, int16, int8, int8_float32); "
        "using int8",
    )


def test_forcing_bfloat16_on_a_t4_runs_float16_and_says_why():
    plan = plan_devices(T4_SERVER, LARGE_V3, compute_type="bfloat16")

    assert plan.primary.compute_type == "float16"
    assert plan.reasons == (
        "bfloat16 is not supported on cuda:0 (Tesla T4) (supported: float32, float16, int8, "
        "int8_float16, int8_float32); using float16",
    )


def test_forcing_a_supported_compute_type_is_honoured_on_the_gpu():
    plan = plan_devices(L4_SERVER, LARGE_V3, compute_type="bfloat16")

    assert plan.compute_type_requested == "bfloat16"
    assert (plan.primary.name, plan.primary.compute_type) == ("cuda:0", "bfloat16")
    assert plan.reasons == ()


# --- explicit workers and threads ---------------------------------------------------


def test_an_explicit_worker_count_is_honoured_on_the_gpu():
    assert plan_devices(A100_SERVER, LARGE_V3, workers=1).primary.workers == 1
    assert plan_devices(T4_SERVER, LARGE_V3, workers=3).primary.workers == 3


def test_an_explicit_cpu_thread_count_is_honoured_on_the_gpu():
    plan = plan_devices(TWO_T4_SERVER, LARGE_V3, cpu_threads=3)

    assert [a.cpu_threads for a in plan.assignments] == [3, 3]


def test_explicit_workers_and_threads_are_honoured_on_the_cpu():
    plan = plan_devices(CPU_ONLY_2_CORES, LARGE_V3, workers=3, cpu_threads=1)

    assert (plan.primary.name, plan.primary.workers, plan.primary.cpu_threads) == ("cpu", 3, 1)


# --- CPU workers and threads --------------------------------------------------------


def test_a_two_core_cpu_runs_one_worker_with_two_threads():
    plan = plan_devices(CPU_ONLY_2_CORES, LARGE_V3)

    assert plan.assignments == (
        DeviceAssignment(
            device="cpu",
            index=0,
            compute_type="int8",
            workers=1,
            cpu_threads=2,
            footprint_mb=pytest.approx(LARGE_V3_INT8_MB),
            footprint_source="estimated",
        ),
    )
    assert plan.reasons == ()


def test_a_sixteen_core_cpu_runs_four_workers_of_four_threads():
    profile = machine(cores=16, ram_total_mb=65536, ram_available_mb=60000)

    plan = plan_devices(profile, LARGE_V3)

    assert (plan.primary.workers, plan.primary.cpu_threads) == (4, 4)
    assert plan.reasons == ()


def test_it_lowers_cpu_workers_to_what_ram_can_hold():
    profile = machine(cores=16, ram_total_mb=16384, ram_available_mb=12000)

    plan = plan_devices(profile, LARGE_V3)

    # 80 % of 11.7 GB holds three 2.9 GB workers, not the four the cores allow.
    assert (plan.primary.workers, plan.primary.cpu_threads) == (3, 4)
    assert plan.reasons == (
        "cpu: 11.7 GB of RAM available holds 3 worker(s) of ~2.9 GB; running 3",
    )


def test_it_keeps_one_cpu_worker_when_ram_cannot_hold_even_one():
    profile = machine(cores=16, ram_total_mb=4096, ram_available_mb=2500)

    plan = plan_devices(profile, LARGE_V3)

    assert plan.primary.workers == 1
    assert len(plan.reasons) == 1
    assert plan.reasons[0].startswith("cpu: 2.4 GB of RAM available holds 0 worker(s)")
    assert plan.reasons[0].endswith("of ~2.9 GB; running 1")


# --- regressions --------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cuda:-1", "cuda:x", "cuda:", "cuda:1:2"])
def test_a_malformed_or_negative_cuda_index_is_refused(device):
    with pytest.raises(DevicePlanError, match="cuda:0 to cuda:1"):
        plan_devices(TWO_T4_SERVER, LARGE_V3, device=device)


@pytest.mark.parametrize("compute_type", ["int8", "float16"])
def test_a_forced_compute_type_still_lets_auto_move_a_model_that_does_not_fit_to_the_cpu(
    compute_type,
):
    plan = plan_devices(GTX_1050_DESKTOP, LARGE_V3, compute_type=compute_type)

    assert [(a.device, a.compute_type) for a in plan.assignments] == [("cpu", "int8")]
    assert plan.model == "large-v3"


def test_forcing_cuda_skips_a_gpu_the_model_does_not_fit_while_another_holds_it():
    plan = plan_devices(RTX_3090_WITH_GTX_1050, LARGE_V3, device="cuda")

    assert [(a.name, a.compute_type) for a in plan.assignments] == [("cuda:0", "float16")]


def test_forcing_cuda_where_the_model_fits_nowhere_uses_the_gpus_as_asked_and_warns():
    plan = plan_devices(GTX_1050_DESKTOP, LARGE_V3, device="cuda")

    assert [(a.name, a.compute_type) for a in plan.assignments] == [("cuda:0", "int8")]
    assert "may run out of memory" in plan.reasons[-1]


def test_asking_for_more_workers_lowers_precision_until_they_fit():
    plan = plan_devices(T4_SERVER, LARGE_V3, workers=4)

    assert (plan.primary.compute_type, plan.primary.workers) == ("int8_float16", 4)
    assert "degraded precision to int8_float16" in plan.reasons[0]
