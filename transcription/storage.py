"""Where a job's files live: its source upload and its result, in the default storage.

Local disk by default, S3 through django-storages in production (scribe/s3.py). Audio is
decoded from a local path, so a remote source is copied to a job work directory on the
worker's host first; both the stored source and the work directory are deleted when the
job ends (a work directory a killed worker left behind: transcription/recovery.py).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

SOURCES = "sources"
RESULTS = "results"


# How much of a stored file is read at a time when it is served.
CHUNK_BYTES = 64 * 1024


def work_root() -> Path:
    """This host's folder of job work directories."""
    return Path(settings.MEDIA_ROOT) / "work"


def work_dir(job_id) -> Path:
    return work_root() / str(job_id)


def source_save(job_id, name: str, upload: File) -> str:
    """Store an upload as the job's source and return its storage name."""
    safe = get_valid_filename(Path(name).name) or "upload"
    return default_storage.save(f"{SOURCES}/{job_id}/{safe}", upload)


@contextlib.contextmanager
def source_local_path(storage_name: str, job_id) -> Iterator[Path]:
    """Yield a local path of a stored source; remote sources are copied to a work dir."""
    try:
        yield Path(default_storage.path(storage_name))
        return
    except NotImplementedError:
        pass  # remote storage: copy it next to the worker
    directory = work_dir(job_id)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / Path(storage_name).name
    # From S3, read as the object's body arrives (scribe/s3.py): never whole in memory.
    with default_storage.open(storage_name, "rb") as remote, target.open("wb") as local:
        shutil.copyfileobj(remote, local, length=1024 * 1024)
    yield target


def result_save(job_id, content: str) -> str:
    return default_storage.save(f"{RESULTS}/{job_id}.json", ContentFile(content.encode("utf-8")))


def stored_chunks(storage_name: str) -> Iterator[bytes]:
    """Read a stored file a chunk at a time, to be sent as it is read."""
    with default_storage.open(storage_name, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def stored_size(storage_name: str) -> int:
    return default_storage.size(storage_name)


def result_read(storage_name: str) -> str:
    with default_storage.open(storage_name, "rb") as handle:
        return handle.read().decode("utf-8")


def delete_quietly(storage_name: str) -> None:
    if storage_name:
        with contextlib.suppress(FileNotFoundError):
            default_storage.delete(storage_name)


def job_audio_delete(job_id, source_path: str) -> None:
    """Delete a job's source and everything derived from it (the work directory)."""
    delete_quietly(source_path)
    with contextlib.suppress(OSError):
        default_storage.delete(f"{SOURCES}/{job_id}")  # the now-empty folder on local disk
    shutil.rmtree(work_dir(job_id), ignore_errors=True)
