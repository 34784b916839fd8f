"""Receive uploads on disk, refusing them as soon as they pass the size limit."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from transcription.errors import UploadTooLargeError

ENVELOPE_BYTES = 64 * 1024  # multipart boundaries and the options field around the file


def max_upload_bytes() -> int:
    return settings.SCRIBE_MAX_UPLOAD_MB * 1024 * 1024


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Write the upload to a temporary file chunk by chunk; stop past the limit.

    The declared Content-Length is checked before anything is read, the bytes actually
    received while reading (a client may lie, or send chunked).
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > max_upload_bytes() + ENVELOPE_BYTES:
            raise UploadTooLargeError(settings.SCRIBE_MAX_UPLOAD_MB)
        self.received = 0
        return super().handle_raw_input(input_data, META, content_length, boundary, encoding)

    def receive_data_chunk(self, raw_data, start):
        self.received = start + len(raw_data)
        if self.received > max_upload_bytes():
            self.file.close()  # a TemporaryUploadedFile removes itself on close
            raise UploadTooLargeError(settings.SCRIBE_MAX_UPLOAD_MB)
        return super().receive_data_chunk(raw_data, start)
