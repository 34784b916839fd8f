"""Speaker diarization with pyannote.audio (the optional ``diarize`` extra).

pyannote and torch are imported only when a job asks for speakers, never at import time:
a worker without the extra runs every other job, and fails a diarization job with a
message saying what to install. The pipeline is loaded once per (source, device) per
worker process, on the job's device, from a local directory or the Hugging Face hub
(token from settings), and is given the decoded waveform rather than the file path: it
would otherwise decode the file again, with its own decoder, for each of its models.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transcription.engine.audio import SAMPLE_RATE_HZ, probe, stream_audio
from transcription.engine.errors import EngineError, TranscriptionCancelled
from transcription.engine.hardware import MB
from transcription.engine.registry import load_measured_footprints, record_measured_footprint
from transcription.engine.speakers import SpeakerTurn, turns_from_annotation

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE = "pyannote/speaker-diarization-community-1"
INSTALL_HINT = "pip install -e '.[diarize]'"
# Memory a loaded pipeline costs a worker where none was measured yet: weights (~30 MB)
# plus the embedding model's batches and torch's CUDA context. Replaced by the peak
# measured on this machine after the first diarization (footprints.json).
ESTIMATED_FOOTPRINT_MB = {"cuda": 1536.0, "cpu": 1024.0}


class DiarizationUnavailableError(EngineError):
    """pyannote, its weights or its token are missing: retrying the job cannot help."""

    code = "diarization_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class LoadedDiarizer:
    source: str
    device: str  # "cpu" or "cuda"
    device_index: int
    pipeline: Any  # pyannote.audio.Pipeline
    models_dir: Path


def _pyannote() -> tuple[Any, Any]:
    """Import torch and pyannote's Pipeline, or say how to get them."""
    # pyannote 4 reports usage to its makers unless told not to; nothing leaves the
    # machine unless the operator opts in (by setting it to true themselves).
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    try:
        import torch
        from pyannote.audio import Pipeline
    except (ImportError, OSError) as exc:  # OSError: a torchaudio built for another torch
        raise DiarizationUnavailableError(
            f"Speaker diarization needs pyannote.audio, which this worker cannot import "
            f"({type(exc).__name__}: {exc}). Install the diarize extra on the batch workers "
            f'({INSTALL_HINT}), or submit without "diarize" (or with "diarize": "channels" '
            "for a recording with one speaker per channel)."
        ) from exc
    return torch, Pipeline


def _checkpoint(source: str, *, cache_dir: Path, offline: bool, token: str | None) -> str:
    """Return what ``Pipeline.from_pretrained`` should load: a local path or a hub id.

    Offline, a hub id must already be in the cache: its cached snapshot is loaded as a
    local directory, since pyannote itself would try the network.
    """
    local = Path(source).expanduser()
    if local.exists():
        return str(local)
    if source.startswith(("/", ".", "~")) or source.count("/") != 1:
        raise DiarizationUnavailableError(
            f"The diarization pipeline {source!r} (SCRIBE_DIARIZATION_MODEL) does not exist: "
            "give a directory holding a pyannote pipeline's config.yaml, or a hub id such as "
            f"{DEFAULT_PIPELINE}."
        )
    if not offline:
        return source
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(
            source, cache_dir=str(cache_dir), local_files_only=True, token=token or None
        )
    except LocalEntryNotFoundError as exc:
        raise DiarizationUnavailableError(_weights_missing(source, cache_dir, offline)) from exc


def _weights_missing(source: str, cache_dir: Path, offline: bool) -> str:
    why = (
        f"this server is offline (SCRIBE_OFFLINE or HF_HUB_OFFLINE) and they are not in {cache_dir}"
        if offline
        else "the hub refused or could not be reached; the model is gated: accept its "
        "conditions on huggingface.co and set SCRIBE_DIARIZATION_TOKEN"
    )
    return (
        f"The weights of the diarization pipeline {source!r} are not available: {why}. "
        "Download the pipeline once (huggingface-cli download "
        f"{source} --local-dir DIR) and set SCRIBE_DIARIZATION_MODEL=DIR on the workers."
    )


class DiarizerManager:
    """One pipeline per (source, device) per process, loaded on first use under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str, int], LoadedDiarizer] = {}

    def get(
        self,
        source: str,
        *,
        models_dir: Path,
        offline: bool,
        token: str | None,
        device: str = "cpu",
        device_index: int = 0,
    ) -> LoadedDiarizer:
        key = (source, device, device_index if device == "cuda" else 0)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._load(source, models_dir, offline, token, key[1], key[2])
                self._loaded[key] = loaded
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()

    def loaded(self) -> list[LoadedDiarizer]:
        with self._lock:
            return list(self._loaded.values())

    @staticmethod
    def _load(
        source: str, models_dir: Path, offline: bool, token: str | None, device: str, index: int
    ) -> LoadedDiarizer:
        torch, pipeline_class = _pyannote()
        cache_dir = models_dir / "pyannote"
        checkpoint = _checkpoint(source, cache_dir=cache_dir, offline=offline, token=token)
        try:
            pipeline = pipeline_class.from_pretrained(
                checkpoint, token=token or None, cache_dir=str(cache_dir)
            )
        except Exception as exc:  # pyannote raises whatever its loaders raise
            # The hub's errors (gated, not found, offline) and missing files: no weights.
            if isinstance(exc, OSError) or type(exc).__module__.startswith("huggingface_hub"):
                raise DiarizationUnavailableError(
                    _weights_missing(source, cache_dir, offline) + f" ({exc})"
                ) from exc
            raise DiarizationUnavailableError(
                f"The diarization pipeline {source!r} could not be loaded "
                f"({type(exc).__name__}: {exc}). Check that it is a pyannote.audio 4 "
                "pipeline (config.yaml and its models)."
            ) from exc
        if pipeline is None:  # pyannote prints why (gated, no token) and returns None
            raise DiarizationUnavailableError(_weights_missing(source, cache_dir, offline))
        target = torch.device("cpu" if device == "cpu" else f"cuda:{index}")
        try:
            pipeline.to(target)
        except RuntimeError as exc:
            raise EngineError(
                f"The diarization pipeline could not be moved to {target}: {exc}."
            ) from exc
        return LoadedDiarizer(source, device, index, pipeline, models_dir)


diarizer_manager = DiarizerManager()


def load_waveform(path: Path) -> np.ndarray:
    """Decode ``path`` to one 16 kHz mono float32 array (pyannote needs the whole file).

    About 230 MB per hour of audio, allocated once from the container's stated duration.
    """
    claimed = probe(Path(path)).duration_s
    capacity = int((claimed or 0) * SAMPLE_RATE_HZ) + SAMPLE_RATE_HZ
    waveform = np.empty(capacity, dtype=np.float32)
    filled = 0
    for chunk in stream_audio(Path(path)):
        if filled + chunk.shape[0] > waveform.shape[0]:  # the container understated it
            waveform = np.resize(waveform, max(2 * waveform.shape[0], filled + chunk.shape[0]))
        waveform[filled : filled + chunk.shape[0]] = chunk
        filled += chunk.shape[0]
    return waveform[:filled]


def diarize(
    loaded: LoadedDiarizer,
    path: Path,
    *,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> list[SpeakerTurn]:
    """Return who spoke when in ``path``, as turns without overlap.

    ``should_cancel()`` is asked at each of the pipeline's steps; when true,
    TranscriptionCancelled is raised there.
    """
    torch, _ = _pyannote()
    waveform = load_waveform(path)
    audio = {"waveform": torch.from_numpy(waveform).unsqueeze(0), "sample_rate": SAMPLE_RATE_HZ}
    limits = {"min_speakers": min_speakers, "max_speakers": max_speakers}

    def hook(step_name, step_artefact, file=None, total=None, completed=None) -> None:
        if should_cancel is not None and should_cancel():
            raise TranscriptionCancelled(0.0)

    cuda = loaded.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(loaded.device_index)
    try:
        with torch.inference_mode():
            output = loaded.pipeline(
                audio, hook=hook, **{k: v for k, v in limits.items() if v is not None}
            )
    finally:
        if cuda:
            _record_cuda_footprint(torch, loaded)
            # Give the cached blocks back: the Whisper model shares this GPU.
            torch.cuda.empty_cache()
    # pyannote 4 returns both; the exclusive one (one speaker at a time) is made for
    # aligning with a transcript. pyannote 3 returned the annotation itself.
    annotation = getattr(output, "exclusive_speaker_diarization", None)
    if annotation is None:
        annotation = getattr(output, "speaker_diarization", output)
    return turns_from_annotation(annotation)


def _footprint_key(source: str, device: str) -> str:
    return f"diarization:{source}|{device}|float32"


def _record_cuda_footprint(torch, loaded: LoadedDiarizer) -> None:
    """Store the pipeline's peak VRAM (weights and working memory) for future plans."""
    peak_mb = torch.cuda.max_memory_reserved(loaded.device_index) / MB
    key = _footprint_key(loaded.source, "cuda")
    if peak_mb > load_measured_footprints(loaded.models_dir).get(key, 0.0):
        record_measured_footprint(loaded.models_dir, key, peak_mb)


def diarization_footprint_mb(source: str, *, models_dir: Path, device: str) -> tuple[float, str]:
    """What a loaded pipeline costs a worker on ``device``: measured here before, else
    estimated."""
    kind = "cpu" if device == "cpu" else "cuda"
    measured = load_measured_footprints(models_dir).get(_footprint_key(source, kind))
    if measured is not None:
        return measured, "measured"
    return ESTIMATED_FOOTPRINT_MB[kind], "estimated"
