"""What a worker process keeps loaded is bounded, and its slot comes from the live workers
of the host, not its PID."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transcription.test_decode_oom import staged_t4  # noqa: F401 - a fixture
from transcription.engine import model_manager
from transcription.lanes import worker_slot


@pytest.fixture
def empty_manager():
    model_manager.clear()
    yield model_manager
    model_manager.clear()


def load(model_dir, tmp_path, *, threads, **bounds):
    return model_manager.get(
        str(model_dir),
        models_dir=tmp_path / "models",
        offline=True,
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        **bounds,
    )


def test_it_keeps_at_most_max_loaded_models_and_drops_the_least_recently_used(
    empty_manager, model_dir, tmp_path
):
    first = load(model_dir, tmp_path, threads=1, max_loaded=2)
    second = load(model_dir, tmp_path, threads=2, max_loaded=2)
    assert load(model_dir, tmp_path, threads=1, max_loaded=2) is first  # used again: newest

    third = load(model_dir, tmp_path, threads=3, max_loaded=2)

    assert [m.cpu_threads for m in model_manager.loaded()] == [1, 3]
    assert second not in model_manager.loaded() and third in model_manager.loaded()


def test_a_gpu_worker_keeps_only_what_its_share_of_the_plan_holds(
    staged_t4,  # noqa: F811
    empty_manager,
    model_dir,
    tmp_path,
):
    def cuda(compute_type):
        return model_manager.get(
            str(model_dir),
            models_dir=tmp_path / "models",
            offline=True,
            device="cuda",
            compute_type=compute_type,
            max_loaded=8,
            footprint_mb=900.0,
            vram_budget_mb=1000.0,
        )

    cuda("float16")
    cuda("int8_float16")
    load(model_dir, tmp_path, threads=1, max_loaded=8)  # CPU models use no VRAM budget

    assert [(m.device, m.compute_type) for m in model_manager.loaded()] == [
        ("cuda", "int8_float16"),
        ("cpu", "int8_float32"),
    ]


# A worker process as the slot sees it: a separate Python process on this host, holding its
# slot until it exits. Its settings are just the two the slot reads.
WORKER = """
import sys, time
from django.conf import settings
settings.configure(VAR_DIR=sys.argv[1], SCRIBE_DEPLOYMENT="test")
from transcription.lanes import worker_slot
print(worker_slot(kind="batch", count=int(sys.argv[2])), flush=True)
time.sleep(60)
"""


class Workers:
    def __init__(self, var_dir, count: int) -> None:
        self.var_dir, self.count, self.processes = var_dir, count, []

    def spawn(self) -> tuple[subprocess.Popen, int]:
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(self.var_dir), str(self.count)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.processes.append(process)
        assert process.stdout is not None
        return process, int(process.stdout.readline())

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path, count=2)
    yield pool
    pool.stop()


def test_workers_take_free_slots_and_a_respawned_worker_takes_the_dead_ones(workers):
    first, first_slot = workers.spawn()
    _, second_slot = workers.spawn()
    first.send_signal(signal.SIGKILL)  # the OOM killer, or django-q2's timeout
    first.wait(timeout=30)
    _, respawned_slot = workers.spawn()

    assert (first_slot, second_slot, respawned_slot) == (0, 1, 0)


def test_more_processes_than_slots_share_slots_rather_than_fail(workers):
    slots = [workers.spawn()[1] for _ in range(3)]

    assert slots == [0, 1, 0]


def test_a_process_keeps_its_slot(settings, tmp_path):
    settings.VAR_DIR = tmp_path

    assert worker_slot(kind="batch", count=2) == worker_slot(kind="batch", count=2)
