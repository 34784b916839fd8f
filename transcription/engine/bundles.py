"""Models as files an operator manages: list, fetch, import offline bundles, verify.

An imported or fetched model directory gets a manifest (``scribe-manifest.json``) with the
sha256 of every file, so ``manage.py models verify`` can tell a model that was copied
intact from one that was truncated or altered since.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from transcription.engine.errors import EngineError, ModelNotFoundError
from transcription.engine.registry import MODEL_FILE, resolve_model

MANIFEST = "scribe-manifest.json"
REQUIRED_FILES = (MODEL_FILE, "config.json", "tokenizer.json")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


class ModelImportError(EngineError):
    code = "model_import_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    size_mb: float
    has_manifest: bool


@dataclass(frozen=True)
class Verification:
    path: Path
    checked: int
    problems: list[str]


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST)


def manifest_write(model_dir: Path, *, name: str, source: str) -> dict:
    """Record the sha256 of every file of ``model_dir`` beside it."""
    manifest = {
        "name": name,
        "source": source,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {str(p.relative_to(model_dir)): _sha256(p) for p in _files(model_dir)},
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def model_verify(model_dir: Path) -> Verification:
    """Compare every file with the checksums recorded when the model was imported."""
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return Verification(
            model_dir,
            0,
            [
                f"no checksums are recorded in {model_dir} ({MANIFEST} is missing): it was "
                "not imported or fetched with `manage.py models`. Import it again with "
                "`manage.py models import PATH --name NAME` to record them."
            ],
        )
    except ValueError as exc:
        return Verification(model_dir, 0, [f"{model_dir / MANIFEST} is not valid JSON: {exc}"])
    problems = []
    recorded: dict[str, str] = manifest.get("files", {})
    for relative, expected in sorted(recorded.items()):
        path = model_dir / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif _sha256(path) != expected:
            problems.append(f"{relative}: checksum differs from the one recorded at import")
    for path in _files(model_dir):
        relative = str(path.relative_to(model_dir))
        if relative not in recorded:
            problems.append(f"{relative}: not in the manifest (added after import)")
    return Verification(model_dir, len(recorded), problems)


def model_list(models_dir: Path) -> list[ModelEntry]:
    """Every model under ``models_dir``: imported directories and the hub's download cache."""
    found: list[ModelEntry] = []
    if not models_dir.is_dir():
        return found
    for weights in sorted(models_dir.glob(f"*/{MODEL_FILE}")) + sorted(
        models_dir.glob(f"models--*/snapshots/*/{MODEL_FILE}")
    ):
        path = weights.parent
        name = path.name
        if path.parent.name == "snapshots":  # models--Systran--faster-whisper-large-v3
            name = path.parent.parent.name.removeprefix("models--").replace("--", "/")
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        found.append(ModelEntry(name, path, size / 1e6, (path / MANIFEST).is_file()))
    return found


def model_fetch(name: str, *, models_dir: Path, offline: bool) -> Path:
    """Download ``name`` into ``models_dir`` (or find it there) and record its checksums."""
    resolved = resolve_model(name, models_dir=models_dir, offline=offline)
    if not (resolved.path / MANIFEST).is_file():
        manifest_write(resolved.path, name=name, source="hub")
    return resolved.path


def _extract(archive: Path, into: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                target = (into / member).resolve()
                if not target.is_relative_to(into.resolve()):
                    raise ModelImportError(f"{archive} holds a path outside itself: {member}")
            bundle.extractall(into)
        return
    try:
        with tarfile.open(archive) as bundle:
            bundle.extractall(into, filter="data")  # refuses links and paths outside `into`
    except (tarfile.TarError, OSError) as exc:
        raise ModelImportError(f"{archive} could not be unpacked: {exc}") from exc


def _model_root(tree: Path, source: Path) -> Path:
    """The directory holding model.bin: the tree itself or its one model directory."""
    candidates = sorted({p.parent for p in tree.rglob(MODEL_FILE)})
    if not candidates:
        raise ModelImportError(
            f"{source} holds no CTranslate2 Whisper model ({MODEL_FILE} not found). A model "
            "bundle is a directory (or .tar.gz/.zip of one) with model.bin, config.json and "
            "tokenizer.json, e.g. a copy of Systran/faster-whisper-large-v3."
        )
    if len(candidates) > 1:
        raise ModelImportError(
            f"{source} holds {len(candidates)} models ({', '.join(map(str, candidates))}); "
            "import them one at a time."
        )
    root = candidates[0]
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    if missing:
        raise ModelImportError(
            f"{source} is incomplete: {', '.join(missing)} missing beside {MODEL_FILE}. "
            "Copy the whole model directory."
        )
    return root


def default_import_name(source: Path) -> str:
    name = source.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def model_import(
    source: Path, *, models_dir: Path, name: str | None = None, replace: bool = False
) -> Path:
    """Copy a model directory or archive into ``models_dir/<name>`` and record checksums.

    The copy is assembled beside its destination and renamed into place, so a failed
    import never leaves half a model where the workers look for one.
    """
    source = source.expanduser()
    if not source.exists():
        raise ModelImportError(f"{source} does not exist.")
    name = name or default_import_name(source)
    if not name or "/" in name or name.startswith("."):
        raise ModelImportError(
            f"{name!r} cannot name a model directory: pass --name, e.g. --name large-v3."
        )
    target = models_dir / name
    if target.exists() and not replace:
        raise ModelImportError(
            f"{target} already exists: pass --replace to overwrite it, or another --name."
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".import-{name}-", dir=models_dir) as work:
        staging = Path(work) / "unpacked"
        if source.is_dir():
            shutil.copytree(_model_root(source, source), staging)
        elif source.name.endswith(ARCHIVE_SUFFIXES):
            _extract(source, staging)
            root = _model_root(staging, source)
            if root != staging:
                staging = root
        else:
            raise ModelImportError(
                f"{source} is neither a directory nor an archive ({', '.join(ARCHIVE_SUFFIXES)})."
            )
        manifest_write(staging, name=name, source=str(source))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def lane_model_missing(name: str, *, models_dir: Path) -> str | None:
    """The message for a lane model that is not on disk, or None when it is."""
    try:
        resolve_model(name, models_dir=models_dir, offline=True)
    except ModelNotFoundError as exc:
        return exc.message
    return None
