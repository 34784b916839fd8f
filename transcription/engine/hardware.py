"""What hardware is here: CUDA devices, CPU cores and RAM, as this process may use them.

``detect_hardware()`` reads the machine (CUDA devices through CTranslate2 and nvidia-smi,
CPU cores and RAM through the kernel, cgroup limits included) into a ``HardwareProfile``;
``transcription.engine.devices`` plans workers on such a profile without touching the
machine, so its policy is unit-tested on recorded profiles of machines we do not have.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import ctranslate2

MB = 1024 * 1024
NVIDIA_SMI_QUERY = "index,name,compute_cap,memory.total,memory.free"


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: tuple[int, int] | None
    total_vram_mb: int | None
    free_vram_mb: int | None
    compute_types: tuple[str, ...]


@dataclass(frozen=True)
class HardwareProfile:
    cpu_cores: int
    ram_total_mb: int
    ram_available_mb: int
    cpu_compute_types: tuple[str, ...]
    gpus: tuple[GpuInfo, ...] = ()
    notes: tuple[str, ...] = ()


def detect_hardware() -> HardwareProfile:
    """Read this machine's CPUs, RAM and CUDA devices."""
    notes: list[str] = []
    ram_total, ram_available = _memory_mb()
    gpus = _detect_gpus(notes)
    return HardwareProfile(
        cpu_cores=_cpu_cores(),
        ram_total_mb=ram_total,
        ram_available_mb=ram_available,
        cpu_compute_types=tuple(sorted(ctranslate2.get_supported_compute_types("cpu"))),
        gpus=tuple(gpus),
        notes=tuple(notes),
    )


def _cpu_cores() -> int:
    cores = len(os.sched_getaffinity(0))
    try:  # cgroup v2 CPU quota, as a container limit sets it
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _memory_mb() -> tuple[int, int]:
    info: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0]) // 1024
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0))
    try:  # cgroup v2 memory limit
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip()) // MB
        if limit != "max":
            limit_mb = int(limit) // MB
            total = min(total, limit_mb)
            available = min(available, max(0, limit_mb - used))
    except (OSError, ValueError):
        pass
    return total, available


def _detect_gpus(notes: list[str]) -> list[GpuInfo]:
    try:
        count = ctranslate2.get_cuda_device_count()
    except Exception as exc:  # a broken driver install raises from inside CTranslate2
        notes.append(f"CUDA unavailable: {exc}")
        return []
    if count == 0:
        return []
    rows = query_nvidia_smi(notes)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if visible and all(part.strip().isdigit() for part in visible.split(",")):
        wanted = [int(part) for part in visible.split(",")]
        by_index = {row["index"]: row for row in rows}
        rows = [by_index[i] for i in wanted if i in by_index]
    gpus = []
    for index in range(count):
        row = rows[index] if index < len(rows) else {}
        gpus.append(
            GpuInfo(
                index=index,
                name=str(row.get("name", "unknown CUDA device")),
                compute_capability=row.get("compute_capability"),
                total_vram_mb=row.get("total_mb"),
                free_vram_mb=row.get("free_mb"),
                compute_types=tuple(sorted(ctranslate2.get_supported_compute_types("cuda", index))),
            )
        )
    return gpus


def query_nvidia_smi(notes: list[str]) -> list[dict]:
    """Return one dict per GPU from nvidia-smi; empty (with a note) when it cannot run."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        notes.append("nvidia-smi not found: VRAM and compute capability unknown")
        return []
    try:
        out = subprocess.run(
            [binary, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        notes.append(f"nvidia-smi failed: {exc}")
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(output: str) -> list[dict]:
    rows = []
    for line in output.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, cap, total, free = parts
        major, _, minor = cap.partition(".")
        rows.append(
            {
                "index": int(index),
                "name": name,
                "compute_capability": (int(major), int(minor or 0)) if major.isdigit() else None,
                "total_mb": int(float(total)) if total.replace(".", "", 1).isdigit() else None,
                "free_mb": int(float(free)) if free.replace(".", "", 1).isdigit() else None,
            }
        )
    return rows
