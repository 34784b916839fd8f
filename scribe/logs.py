"""Log records that say which job or live session they are about.

``log_context(job_id=…)`` marks everything logged inside it (in this thread or task: a
context variable); ``SCRIBE_LOG_FORMAT=json`` writes one JSON object per line with
``job_id`` and ``session_id`` beside the message, for log pipelines (Loki, ELK, CloudWatch).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)


@contextlib.contextmanager
def log_context(*, job_id: object = None, session_id: object = None) -> Iterator[None]:
    """Tag every record logged inside the block with the job and/or session."""
    tokens = []
    if job_id is not None:
        tokens.append((_job_id, _job_id.set(str(job_id))))
    if session_id is not None:
        tokens.append((_session_id, _session_id.set(str(session_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copy the current job and session onto the record (an explicit ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        if getattr(record, "session_id", None) is None:
            record.session_id = _session_id.get()
        return True


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault(
            "fmt",
            "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s %(job_id)s %(session_id)s",
        )
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        super().__init__(*args, **kwargs)
