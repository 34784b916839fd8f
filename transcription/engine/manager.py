"""One model per (model, device, compute type) per process, loaded once and shared.

Workers call ``model_manager.get(...)`` after their process has started (CUDA does not
survive fork, so nothing is loaded at import time). Loading holds the manager's lock: the
second caller asking for the same model waits for the first load instead of loading a copy.
When a CUDA load runs out of memory, the manager steps down in precision and then to the
CPU — never to a smaller model — and says so in ``LoadedModel.fallback``.

What a process keeps loaded is bounded: at most ``max_loaded`` models (the least recently
used is dropped first) and, on a GPU, what fits in the process's share of the device plan.
A model that runs out of GPU memory while decoding is replaced by ``step_down()`` (one
step: lower precision, else the CPU), and later requests for it get the replacement.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from faster_whisper import WhisperModel

from transcription.engine.errors import EngineError
from transcription.engine.hardware import query_nvidia_smi
from transcription.engine.registry import (
    footprint_key,
    load_measured_footprints,
    model_checksum,
    record_measured_footprint,
    resolve_model,
)

logger = logging.getLogger(__name__)

# After running out of VRAM at one precision, the next ones to try on the same GPU.
_CUDA_FALLBACKS = {
    "float16": ["int8_float16", "int8"],
    "bfloat16": ["int8_bfloat16", "int8"],
    "float32": ["float16", "int8_float16", "int8"],
    "int8_float16": ["int8"],
    "int8_bfloat16": ["int8"],
}
CPU_FALLBACK_TYPE = "int8"
# After running out of VRAM while decoding: one precision step that saves memory (int8
# weights), then the CPU. Plain int8 on CUDA keeps float32 activations, so it is no step
# down from int8_float16.
_DECODE_STEP_DOWN = {
    "float32": "float16",
    "float16": "int8_float16",
    "bfloat16": "int8_bfloat16",
}


@dataclass(frozen=True)
class ModelKey:
    path: str
    device: str
    device_index: int
    compute_type: str
    cpu_threads: int
    num_workers: int


@dataclass(frozen=True)
class LoadedModel:
    name: str
    path: Path
    checksum: str
    device: str
    device_index: int
    compute_type_requested: str
    compute_type: str  # effective, as CTranslate2 reports it
    cpu_threads: int
    whisper: WhisperModel
    models_dir: Path
    fallback: str | None = None  # why it runs with other settings than requested
    vram_free_before_mb: int | None = None
    key: ModelKey | None = None  # what the manager loaded it as


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether CTranslate2 ran out of (GPU) memory: it raises a plain RuntimeError."""
    text = str(exc).lower()
    return "out of memory" in text or "cudaerrormemoryallocation" in text


class ModelManager:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: OrderedDict[ModelKey, LoadedModel] = OrderedDict()  # oldest use first
        self._footprints: dict[ModelKey, float] = {}  # planned VRAM of each GPU model
        self._replaced: dict[ModelKey, ModelKey] = {}  # stepped down after a decode OOM

    def get(
        self,
        name: str,
        *,
        models_dir: Path,
        offline: bool,
        device: str = "cpu",
        device_index: int = 0,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        num_workers: int = 1,
        max_loaded: int | None = None,
        footprint_mb: float | None = None,
        vram_budget_mb: float | None = None,
    ) -> LoadedModel:
        """Return the loaded model, loading it on first use.

        Before a load, the least recently used models are dropped until at most
        ``max_loaded`` remain with the new one, and, on a GPU, until the planned
        ``footprint_mb`` of this device's models fits in ``vram_budget_mb`` (this process's
        share of the plan). A dropped model is freed when the last transcription using it
        ends.
        """
        resolved = resolve_model(name, models_dir=models_dir, offline=offline)
        key = ModelKey(
            str(resolved.path), device, device_index, compute_type, cpu_threads, num_workers
        )
        with self._lock:
            while key in self._replaced:  # it ran out of memory decoding: use what replaced it
                key = self._replaced[key]
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
                return loaded
            self._make_room(key, max_loaded, footprint_mb, vram_budget_mb)
            loaded = self._load(name, resolved.path, key, models_dir)
            self._models[key] = loaded
            if footprint_mb is not None:
                self._footprints[key] = footprint_mb
            return loaded

    def loaded(self) -> list[LoadedModel]:
        """The models held now, least recently used first."""
        with self._lock:
            return list(self._models.values())

    def clear(self) -> None:
        """Drop every model (they are freed when the last transcription using them ends)."""
        with self._lock:
            self._models.clear()
            self._footprints.clear()
            self._replaced.clear()

    def step_down(self, model: LoadedModel, *, cause: str) -> LoadedModel:
        """Replace ``model``, which ran out of GPU memory, by the same model one step down:
        the next lower precision on its GPU, else the CPU. Later ``get`` calls for it return
        the replacement. Raises EngineError for a model already on the CPU."""
        key = model.key
        if key is None or model.device != "cuda":
            raise EngineError(
                f"Model {model.name!r} ran out of memory on {model.device} ({cause}); there is "
                "nothing lower to step down to. Give the worker more memory or fewer workers "
                "(SCRIBE_WORKERS)."
            )
        lower = _DECODE_STEP_DOWN.get(model.compute_type)
        target = (
            replace(key, compute_type=lower)
            if lower
            else replace(key, device="cpu", device_index=0, compute_type=CPU_FALLBACK_TYPE)
        )
        with self._lock:
            # Drop it first: its VRAM must be free before the replacement loads.
            self._models.pop(key, None)
            self._footprints.pop(key, None)
            replacement = self._models.get(target) or self._load(
                model.name, model.path, target, model.models_dir
            )
            self._models[target] = replacement
            self._replaced[key] = target
        note = (
            f"{cause} on {model.device}/{model.compute_type}: continued on "
            f"{replacement.device}/{replacement.compute_type} (same model)"
        )
        logger.warning("%s: %s", model.name, note)
        return replace(
            replacement,
            compute_type_requested=model.compute_type_requested,
            fallback="; ".join(filter(None, [model.fallback, note])),
        )

    def _make_room(
        self,
        key: ModelKey,
        max_loaded: int | None,
        footprint_mb: float | None,
        vram_budget_mb: float | None,
    ) -> None:
        """Drop the least recently used models until ``key`` fits the bounds."""
        for old in list(self._models):
            too_many = max_loaded is not None and len(self._models) >= max_loaded
            same_gpu = [
                k for k in self._models if k.device == "cuda" and k.device_index == key.device_index
            ]
            too_big = (
                key.device == "cuda"
                and vram_budget_mb is not None
                and old in same_gpu
                and sum(self._footprints.get(k, 0.0) for k in same_gpu) + (footprint_mb or 0.0)
                > vram_budget_mb
            )
            if not (too_many or too_big):
                continue
            logger.info(
                "dropping model %s (%s/%s) to load another", old.path, old.device, old.compute_type
            )
            del self._models[old]
            self._footprints.pop(old, None)

    def _load(self, name: str, path: Path, key: ModelKey, models_dir: Path) -> LoadedModel:
        attempts = [(key.device, key.compute_type)]
        if key.device == "cuda":
            attempts += [("cuda", t) for t in _CUDA_FALLBACKS.get(key.compute_type, [])]
            attempts.append(("cpu", CPU_FALLBACK_TYPE))
        failures: list[str] = []
        for device, compute_type in attempts:
            free_before = self._free_vram_mb(key.device_index) if device == "cuda" else None
            try:
                whisper = WhisperModel(
                    str(path),
                    device=device,
                    device_index=key.device_index,
                    compute_type=compute_type,
                    cpu_threads=key.cpu_threads,
                    num_workers=key.num_workers,
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                if is_out_of_memory(exc):
                    failures.append(f"{device}/{compute_type}: out of memory")
                    logger.warning(
                        "loading %s on %s/%s ran out of memory", name, device, compute_type
                    )
                    continue
                raise EngineError(
                    f"Model {name!r} at {path} could not be loaded on {device} with "
                    f"{compute_type}: {exc}. Check that it is a CTranslate2 Whisper model and "
                    "that the device and compute type are supported (manage.py detect)."
                ) from exc
            fallback = None
            if failures:
                fallback = (
                    f"{'; '.join(failures)}: running on {device} with {compute_type} "
                    "(same model, lower precision or another device)"
                )
                logger.warning("%s: %s", name, fallback)
            return LoadedModel(
                name=name,
                path=path,
                checksum=model_checksum(path),
                device=device,
                device_index=key.device_index if device == "cuda" else 0,
                compute_type_requested=key.compute_type,
                compute_type=whisper.model.compute_type,
                cpu_threads=key.cpu_threads,
                whisper=whisper,
                models_dir=models_dir,
                fallback=fallback,
                vram_free_before_mb=free_before,
                key=key,
            )
        raise EngineError(f"Model {name!r} could not be loaded anywhere: {'; '.join(failures)}.")

    @staticmethod
    def _free_vram_mb(index: int) -> int | None:
        rows = query_nvidia_smi([])
        return rows[index]["free_mb"] if index < len(rows) else None


def record_vram_footprint(model: LoadedModel) -> None:
    """Store the VRAM this model's process holds after a transcription, for future plans.

    CTranslate2's caching allocator keeps what it allocated, so "free before load" minus
    "free now" approximates the peak of one worker: weights plus working memory.
    """
    if model.device != "cuda" or model.vram_free_before_mb is None:
        return
    rows = query_nvidia_smi([])
    if model.device_index >= len(rows) or rows[model.device_index]["free_mb"] is None:
        return
    used = model.vram_free_before_mb - rows[model.device_index]["free_mb"]
    if used <= 0:
        return
    key = footprint_key(model.path, "cuda", model.compute_type)
    if used > load_measured_footprints(model.models_dir).get(key, 0):
        record_measured_footprint(model.models_dir, key, used)


model_manager = ModelManager()
