"""Device policy: how to run a model on the hardware ``detect_hardware()`` found.

``plan_devices()`` is a pure function of a ``HardwareProfile`` (see
``transcription.engine.hardware``), the model's memory footprint and the operator's
overrides, so the policy is unit-tested on recorded profiles of machines we do not have.

Policy: on ``auto``, compute capability >= 7.0 runs float16, int8_float16 when VRAM is
tight; Pascal (6.x) runs int8; CPU runs int8. Under memory pressure the plan degrades
precision, then device — never the model: the batch lane is the accuracy lane, so a model
that fits nowhere on the GPU runs on the CPU instead.

``plan_lanes()`` plans both lanes of one host against one VRAM budget per GPU: the realtime
worker (its model plus the working memory of the live sessions it decodes together) is
placed first, because streams come before batch; the batch workers fill what is left.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from transcription.engine.errors import DevicePlanError
from transcription.engine.hardware import MB, GpuInfo, HardwareProfile

# Bytes per weight for each compute type; int8 variants quantise the linear layers.
BYTES_PER_PARAM = {
    "float32": 4.0,
    "float16": 2.0,
    "bfloat16": 2.0,
    "int16": 2.0,
    "int8": 1.0,
    "int8_float16": 1.0,
    "int8_bfloat16": 1.0,
    "int8_float32": 1.0,
}
# Working memory per worker (activations, beam caches, CUDA context) scales with the model,
# not with its quantisation: about one byte per parameter. This matches faster-whisper's
# published large-v2 figures (fp16 4.5 GB, int8 2.9 GB with beam 5).
WORKING_BYTES_PER_PARAM = 1.0
VRAM_RESERVE_FRACTION = 0.05
VRAM_RESERVE_MIN_MB = 512
RAM_USABLE_FRACTION = 0.8
CPU_THREADS_PER_WORKER_MAX = 4
GPU_WORKER_CPU_THREADS_MAX = 4
# With only an estimate of the footprint, one worker per GPU; a footprint measured on this
# GPU may allow more, up to this many (past it the workers compete for the same compute and
# each job only gets slower).
DEFAULT_WORKERS_PER_GPU = 1
MEASURED_WORKERS_PER_GPU_MAX = 4
# Working memory of one live session decoded in a batch on the GPU: its encoder pass over a
# 30 s buffer (attention of the largest layer dominates) and its decoder caches. An
# estimate for large-v3-turbo at float16, sized high; the realtime worker decodes at most
# its planned batch of sessions at once.
REALTIME_SESSION_WORKING_MB = 192.0


@dataclass(frozen=True)
class ModelSize:
    """What a model costs in memory: measured when we have loaded it before, else estimated."""

    name: str
    params_millions: float | None
    measured_mb: Mapping[str, float] = field(default_factory=dict)  # "cuda|float16" -> MB
    # Memory a worker holds beside the model's own: the live sessions a realtime worker
    # decodes together, or a diarization model a batch worker loads.
    extra_mb: float = 0.0

    def footprint_mb(self, device: str, compute_type: str) -> tuple[float | None, str]:
        measured = self.measured_mb.get(f"{device}|{compute_type}")
        if measured is not None:
            return measured + self.extra_mb, "measured"
        if self.params_millions is None:
            return None, "unknown"
        per_param = BYTES_PER_PARAM.get(compute_type, 2.0) + WORKING_BYTES_PER_PARAM
        return self.params_millions * 1e6 * per_param / MB + self.extra_mb, "estimated"


@dataclass(frozen=True)
class DeviceAssignment:
    device: str  # "cpu" or "cuda"
    index: int
    compute_type: str
    workers: int
    cpu_threads: int  # per worker: explicit, CTranslate2's default can oversubscribe
    footprint_mb: float | None
    footprint_source: str

    @property
    def name(self) -> str:
        return "cpu" if self.device == "cpu" else f"cuda:{self.index}"


@dataclass(frozen=True)
class DevicePlan:
    model: str
    device_requested: str
    compute_type_requested: str
    assignments: tuple[DeviceAssignment, ...]
    reasons: tuple[str, ...]

    @property
    def primary(self) -> DeviceAssignment:
        return self.assignments[0]

    @property
    def total_workers(self) -> int:
        return sum(a.workers for a in self.assignments)


@dataclass(frozen=True)
class GpuBudget:
    """How one GPU's VRAM is shared between the lanes, in MB."""

    index: int
    name: str
    total_mb: float | None
    free_mb: float | None  # as seen when planning, plus what this host's realtime holds
    reserve_mb: float  # kept free: the driver, fragmentation, other processes
    realtime_mb: float  # the realtime worker: model + sessions' working memory
    batch_mb: float  # batch workers x (model + diarization)

    @property
    def planned_mb(self) -> float:
        return self.realtime_mb + self.batch_mb


@dataclass(frozen=True)
class LanePlan:
    """Both lanes of one host: a realtime worker per device it uses, batch workers."""

    batch: DevicePlan
    realtime: DevicePlan | None  # None when this host serves no live sessions
    gpus: tuple[GpuBudget, ...]
    realtime_sessions: int  # live sessions decoded together, whose memory is planned


def _gpu_ladder(gpu: GpuInfo) -> list[str]:
    cc = gpu.compute_capability
    if cc is None:  # no nvidia-smi: trust what CTranslate2 says the device supports
        ladder = ["float16", "int8_float16", "int8", "float32"]
    elif cc >= (7, 0):
        ladder = ["float16", "int8_float16"]
    elif cc >= (6, 0):
        ladder = ["int8", "float32"]  # Pascal: fp16 is slow, int8 (dp4a) is fast
    else:
        ladder = ["float32"]
    return [t for t in ladder if t in gpu.compute_types] or list(gpu.compute_types[:1])


def _cpu_ladder(profile: HardwareProfile) -> list[str]:
    preferred: tuple[str, ...] = ("int8", "int8_float32", "float32")
    return [t for t in preferred if t in profile.cpu_compute_types] or ["float32"]


def _usable_vram_mb(gpu: GpuInfo) -> float | None:
    if gpu.free_vram_mb is None:
        return None
    return max(0.0, gpu.free_vram_mb - _reserve_mb(gpu))


def _reserve_mb(gpu: GpuInfo) -> float:
    """Return the VRAM kept free on ``gpu``: the driver, fragmentation, other processes."""
    return max(VRAM_RESERVE_MIN_MB, (gpu.total_vram_mb or 0) * VRAM_RESERVE_FRACTION)


def _fmt_mb(mb: float | None) -> str:
    return "unknown" if mb is None else f"{mb / 1024:.1f} GB"


def _choose_type(
    requested: str, ladder: list[str], supported: tuple[str, ...], where: str, reasons: list[str]
) -> str | None:
    """Return the forced type (or its nearest supported stand-in); None on auto."""
    if requested == "auto":
        return None
    if requested == "default" or requested in supported:
        return requested
    effective = ladder[0]
    reasons.append(
        f"{requested} is not supported on {where} (supported: {', '.join(supported)}); "
        f"using {effective}"
    )
    return effective


def _plan_gpu(
    gpu: GpuInfo,
    model: ModelSize,
    requested_type: str,
    workers: int | None,
    max_workers: int | None,
    forced: bool,
    reasons: list[str],
) -> DeviceAssignment | None:
    """Plan one GPU; None when the model fits at no allowed precision and nothing forces it.

    ``forced`` means the operator named this GPU: it is used even when the model may not
    fit. A forced compute type alone does not pin the GPU: the device may still degrade.
    """
    where = f"cuda:{gpu.index} ({gpu.name})"
    ladder = _gpu_ladder(gpu)
    usable = _usable_vram_mb(gpu)
    forced_type = _choose_type(requested_type, ladder, gpu.compute_types, where, reasons)
    candidates = [forced_type] if forced_type else ladder

    def fitting(compute_type: str) -> int | None:
        footprint, _ = model.footprint_mb("cuda", compute_type)
        if usable is None or footprint is None:
            return None
        return math.floor(usable / footprint)

    def assign(compute_type: str, fits: int | None) -> DeviceAssignment:
        footprint, source = model.footprint_mb("cuda", compute_type)
        if fits is None:
            reasons.append(f"{where}: free VRAM or model size unknown; assuming {model.name} fits")
            fits = 1
        if compute_type != candidates[0]:
            reasons.append(
                f"{where}: {candidates[0]} needs "
                f"~{_fmt_mb(model.footprint_mb('cuda', candidates[0])[0])} per worker, "
                f"{_fmt_mb(usable)} usable: degraded precision to {compute_type}"
            )
        if workers and workers > fits:
            reasons.append(f"{where}: {workers} workers asked for, {fits} fit in {_fmt_mb(usable)}")
        cap = max_workers
        if cap is None:
            cap = MEASURED_WORKERS_PER_GPU_MAX if source == "measured" else DEFAULT_WORKERS_PER_GPU
        count = workers or max(1, min(fits, cap))
        return DeviceAssignment("cuda", gpu.index, compute_type, count, 0, footprint, source)

    # The highest precision that holds the workers asked for (or one), then one worker.
    for needed in dict.fromkeys([workers or 1, 1]):
        for compute_type in candidates:
            fits = fitting(compute_type)
            if fits is None or fits >= needed:
                return assign(compute_type, fits)

    smallest = min(candidates, key=lambda t: model.footprint_mb("cuda", t)[0] or 0.0)
    need = _fmt_mb(model.footprint_mb("cuda", smallest)[0])
    if forced:
        reasons.append(
            f"{where}: {model.name} needs ~{need} at {smallest} but only {_fmt_mb(usable)} "
            "is usable; running there as asked, it may run out of memory"
        )
        return DeviceAssignment(
            "cuda", gpu.index, smallest, workers or 1, 0, *model.footprint_mb("cuda", smallest)
        )
    reasons.append(
        f"{where}: {model.name} needs ~{need} even at {smallest}, only {_fmt_mb(usable)} "
        "usable: not using this GPU (the model is never swapped for a smaller one)"
    )
    return None


def _plan_cpu(
    profile: HardwareProfile,
    model: ModelSize,
    requested_type: str,
    workers: int | None,
    cpu_threads: int | None,
    reasons: list[str],
) -> DeviceAssignment:
    ladder = _cpu_ladder(profile)
    compute_type = (
        _choose_type(requested_type, ladder, profile.cpu_compute_types, "cpu", reasons) or ladder[0]
    )
    cores = max(1, profile.cpu_cores)
    threads = cpu_threads or min(cores, CPU_THREADS_PER_WORKER_MAX)
    count = workers or max(1, cores // threads)
    footprint, source = model.footprint_mb("cpu", compute_type)
    if footprint is not None and not workers:
        by_ram = math.floor(profile.ram_available_mb * RAM_USABLE_FRACTION / footprint)
        if by_ram < count:
            reasons.append(
                f"cpu: {_fmt_mb(profile.ram_available_mb)} of RAM available holds {by_ram} "
                f"worker(s) of ~{_fmt_mb(footprint)}; running {max(1, by_ram)}"
            )
            count = max(1, by_ram)
    return DeviceAssignment("cpu", 0, compute_type, count, threads, footprint, source)


def plan_devices(
    profile: HardwareProfile,
    model: ModelSize,
    *,
    device: str = "auto",
    compute_type: str = "auto",
    workers: int | None = None,
    cpu_threads: int | None = None,
    max_workers_per_gpu: int | None = None,
) -> DevicePlan:
    """Turn a hardware profile, a model and overrides into a plan of workers per device.

    ``max_workers_per_gpu`` None: one worker per GPU on an estimated footprint, as many as
    fit (at most MEASURED_WORKERS_PER_GPU_MAX) on one measured on that kind of GPU.
    """
    reasons: list[str] = []
    assignments: list[DeviceAssignment] = []

    def plan_gpus(gpus: list[GpuInfo], *, forced: bool) -> list[DeviceAssignment]:
        planned = (
            _plan_gpu(gpu, model, compute_type, workers, max_workers_per_gpu, forced, reasons)
            for gpu in gpus
        )
        return [p for p in planned if p is not None]

    indexed = re.fullmatch(r"cuda:(\d+)", device)
    if device == "cuda" or device.startswith("cuda:"):
        if not profile.gpus:
            raise DevicePlanError(
                f"device {device!r} was asked for, but CTranslate2 sees no CUDA device "
                f"({'; '.join(profile.notes) or 'no GPU or no CUDA driver'}). "
                "Use --device auto or cpu, or check the driver with nvidia-smi."
            )
        last = len(profile.gpus) - 1
        if device != "cuda" and (indexed is None or int(indexed.group(1)) > last):
            raise DevicePlanError(
                f"device {device!r} does not exist: this machine has {len(profile.gpus)} "
                f"CUDA device(s), cuda:0 to cuda:{last}."
            )
        if indexed:
            assignments = plan_gpus([profile.gpus[int(indexed.group(1))]], forced=True)
        else:
            # "cuda" means the GPUs rather than the CPU: those the model fits on, or, when it
            # fits on none, all of them as asked.
            assignments = plan_gpus(list(profile.gpus), forced=False)
            if not assignments:
                assignments = plan_gpus(list(profile.gpus), forced=True)
    elif device == "auto":
        assignments = plan_gpus(list(profile.gpus), forced=False)
        if profile.gpus and not assignments:
            reasons.append(f"degraded device: {model.name} runs on the CPU")
    elif device != "cpu":
        raise DevicePlanError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N.")

    if not assignments:
        assignments.append(_plan_cpu(profile, model, compute_type, workers, cpu_threads, reasons))
    else:
        gpu_workers = sum(a.workers for a in assignments)
        threads = cpu_threads or max(
            1, min(GPU_WORKER_CPU_THREADS_MAX, profile.cpu_cores // gpu_workers)
        )
        assignments = [
            DeviceAssignment(
                a.device,
                a.index,
                a.compute_type,
                a.workers,
                threads,
                a.footprint_mb,
                a.footprint_source,
            )
            for a in assignments
        ]
    return DevicePlan(
        model=model.name,
        device_requested=device,
        compute_type_requested=compute_type,
        assignments=tuple(assignments),
        reasons=tuple(reasons),
    )


def plan_lanes(
    profile: HardwareProfile,
    batch_model: ModelSize,
    realtime_model: ModelSize | None,
    *,
    device: str = "auto",
    compute_type: str = "auto",
    workers: int | None = None,
    cpu_threads: int | None = None,
    max_workers_per_gpu: int | None = None,
    realtime_sessions: int = 8,
    diarization_mb: float = 0.0,
    realtime_held_mb: Mapping[int, float] | None = None,
) -> LanePlan:
    """Plan this host's realtime worker and batch workers against one budget per device.

    The realtime lane goes first, streams before batch: one worker per device it uses,
    holding its model and the working memory of ``realtime_sessions`` sessions decoded
    together. The batch lane is planned in what is left; each batch worker holds its model
    plus ``diarization_mb`` when workers load a diarization model. ``realtime_held_mb`` is
    the VRAM per GPU that a running realtime worker of this host already holds (its claim):
    it is missing from the free VRAM the profile reports, and is counted once, as the
    realtime lane's share, so the plan comes out the same before and after it loads.
    """
    profile = _with_realtime_held(profile, realtime_held_mb or {})
    realtime = None
    claims: dict[int, float] = {}
    batch_profile = profile
    if realtime_model is not None:
        realtime = _plan_realtime(
            profile,
            realtime_model,
            realtime_sessions=realtime_sessions,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
        )
        claims = {
            a.index: a.footprint_mb or 0.0 for a in realtime.assignments if a.device == "cuda"
        }
        batch_profile = _left_for_batch(profile, realtime, claims)

    sized_batch = dataclasses.replace(batch_model, extra_mb=batch_model.extra_mb + diarization_mb)
    batch = plan_devices(
        batch_profile,
        sized_batch,
        device=device,
        compute_type=compute_type,
        workers=workers,
        cpu_threads=cpu_threads,
        max_workers_per_gpu=max_workers_per_gpu,
    )
    kept = [
        f"cuda:{index}: ~{_fmt_mb(mb)} kept for the realtime worker ({realtime_model.name} and "
        f"{realtime_sessions} live sessions decoded together)"
        for index, mb in claims.items()
        if realtime_model is not None
    ]
    batch = dataclasses.replace(batch, reasons=(*kept, *batch.reasons))
    return LanePlan(
        batch=batch,
        realtime=realtime,
        gpus=_gpu_budgets(profile.gpus, batch, claims),
        realtime_sessions=realtime_sessions,
    )


def _with_realtime_held(profile: HardwareProfile, held: Mapping[int, float]) -> HardwareProfile:
    """Count the VRAM this host's running realtime worker holds as free again (its claim)."""
    gpus = tuple(
        dataclasses.replace(
            gpu, free_vram_mb=int(min(gpu.total_vram_mb, gpu.free_vram_mb + held[gpu.index]))
        )
        if gpu.index in held and gpu.free_vram_mb is not None and gpu.total_vram_mb is not None
        else gpu
        for gpu in profile.gpus
    )
    return dataclasses.replace(profile, gpus=gpus)


def _plan_realtime(
    profile: HardwareProfile,
    model: ModelSize,
    *,
    realtime_sessions: int,
    device: str,
    compute_type: str,
    cpu_threads: int | None,
) -> DevicePlan:
    """Plan the realtime worker: its model plus the working memory of its live sessions."""
    sessions_mb = realtime_sessions * REALTIME_SESSION_WORKING_MB
    return plan_devices(
        profile,
        dataclasses.replace(model, extra_mb=model.extra_mb + sessions_mb),
        device=device,
        compute_type=compute_type,
        workers=1,  # one realtime worker per device: every live session of it shares it
        cpu_threads=cpu_threads,
    )


def _left_for_batch(
    profile: HardwareProfile, realtime: DevicePlan, claims: Mapping[int, float]
) -> HardwareProfile:
    """Return the profile less what the realtime worker claims: VRAM per GPU, or RAM."""
    ram_used = sum((a.footprint_mb or 0.0) for a in realtime.assignments if a.device == "cpu")
    return dataclasses.replace(
        profile,
        ram_available_mb=max(0, int(profile.ram_available_mb - ram_used)),
        gpus=tuple(
            dataclasses.replace(gpu, free_vram_mb=int(max(0, gpu.free_vram_mb - claims[gpu.index])))
            if gpu.index in claims and gpu.free_vram_mb is not None
            else gpu
            for gpu in profile.gpus
        ),
    )


def _gpu_budgets(
    gpus: tuple[GpuInfo, ...], batch: DevicePlan, claims: Mapping[int, float]
) -> tuple[GpuBudget, ...]:
    """Return how each GPU's VRAM is shared: reserve, the realtime claim, the batch workers."""
    return tuple(
        GpuBudget(
            index=gpu.index,
            name=gpu.name,
            total_mb=gpu.total_vram_mb,
            free_mb=gpu.free_vram_mb,
            reserve_mb=_reserve_mb(gpu),
            realtime_mb=claims.get(gpu.index, 0.0),
            batch_mb=sum(
                a.workers * (a.footprint_mb or 0.0)
                for a in batch.assignments
                if a.device == "cuda" and a.index == gpu.index
            ),
        )
        for gpu in gpus
    )
