"""One model per (model, device, compute type) per process, loaded once and shared.

Workers call ``model_manager.get(...)`` after their process has started (CUDA does not
survive fork, so nothing is loaded at import time). Loading holds the manager's lock: the
second caller asking for the same model waits for the first load instead of loading a copy.
When a CUDA load runs out of memory, the manager steps down in precision and then to the
CPU — never to a smaller model — and says so in ``LoadedModel.fallback``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from faster_whisper import WhisperModel

from transcription.engine import registry
from transcription.engine.devices import query_nvidia_smi
from transcription.engine.errors import EngineError

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


def _is_out_of_memory(exc: Exception) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "cudaerrormemoryallocation" in text


class ModelManager:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[ModelKey, LoadedModel] = {}

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
    ) -> LoadedModel:
        """Return the loaded model, loading it on first use."""
        resolved = registry.resolve_model(name, models_dir=models_dir, offline=offline)
        key = ModelKey(
            str(resolved.path), device, device_index, compute_type, cpu_threads, num_workers
        )
        with self._lock:
            loaded = self._models.get(key)
            if loaded is None:
                loaded = self._load(name, resolved.path, key, models_dir)
                self._models[key] = loaded
            return loaded

    def clear(self) -> None:
        """Drop every model (they are freed when the last transcription using them ends)."""
        with self._lock:
            self._models.clear()

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
                if _is_out_of_memory(exc):
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
                checksum=registry.model_checksum(path),
                device=device,
                device_index=key.device_index if device == "cuda" else 0,
                compute_type_requested=key.compute_type,
                compute_type=whisper.model.compute_type,
                cpu_threads=key.cpu_threads,
                whisper=whisper,
                models_dir=models_dir,
                fallback=fallback,
                vram_free_before_mb=free_before,
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
    key = registry.footprint_key(model.path, "cuda", model.compute_type)
    if used > registry.load_measured_footprints(model.models_dir).get(key, 0):
        registry.record_measured_footprint(model.models_dir, key, used)


model_manager = ModelManager()
