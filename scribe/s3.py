"""S3-compatible storage (``SCRIBE_STORAGE=s3``): django-storages' backend, made to keep
large files out of memory.

As shipped, django-storages' ``S3Storage`` holds more of a file in memory than scribe can
afford for a 2 GB upload:

- ``open()`` downloads the whole object into a ``SpooledTemporaryFile`` whose threshold
  (``max_memory_size``) defaults to 0, which means *never* roll over to disk: reading a
  source or a result held all of it in memory. Here ``open()`` for reading answers a file
  over the object's HTTP body, read as it arrives (sequential reads only: what scribe
  does), with no copy in memory or on disk.
- ``save()`` of a file already on disk (an upload, which Django writes to a temporary
  file first) goes through ``upload_fileobj``, which reads each 8 MiB part into memory, up
  to ten at a time. Here it goes through ``upload_file``, which sends the parts from the
  file.

Imported only when ``SCRIBE_STORAGE=s3`` (it needs the ``s3`` extra: boto3).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from django.core.files.base import File
from storages.backends.s3 import S3Storage as BaseS3Storage
from storages.utils import clean_name


class S3Storage(BaseS3Storage):
    def get_default_settings(self) -> dict[str, Any]:
        return {
            **super().get_default_settings(),
            # Objects are private: the web process serves them to callers with a key.
            "default_acl": None,
            # A job's names are its own; never overwrite what another job stored.
            "file_overwrite": False,
        }

    def _open(self, name: str, mode: str = "rb") -> File:
        if mode != "rb":
            return super()._open(name, mode)
        try:
            body = self.bucket.Object(self._normalize_name(clean_name(name))).get()["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"No such object in the bucket: {name}") from exc
            raise
        return File(body, name=name)

    def _save(self, name: str, content: Any) -> str:
        temporary_file_path = getattr(content, "temporary_file_path", None)
        if temporary_file_path is None:
            return super()._save(name, content)
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        self.bucket.Object(key).upload_file(
            temporary_file_path(),
            ExtraArgs=self._get_write_parameters(key, content),
            Config=self.transfer_config,
        )
        return cleaned
