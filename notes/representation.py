"""A job's notes as callers see them, beside the job (``GET /v1/jobs/{id}``, the result
JSON, callbacks): ``{"notes": {slug: {...}}, "keywords": {...}}``, only what was asked."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from notes.models import Note


def note_representation(note: Note) -> dict[str, Any]:
    data: dict[str, Any] = {"status": note.status}
    if note.kind == Note.Kind.NOTES:
        data["template_version"] = note.template_version
    data.update(model=note.model or None, data=note.data, attempts=note.attempts, usage=note.usage)
    if note.status == Note.Status.FAILED:
        data["error"] = {"code": note.error_code, "message": note.error_message}
    return data


def job_notes(job: Any) -> dict[str, Any]:
    """The ``notes`` and ``keywords`` members of ``job``'s representation (none asked:
    empty). Reads ``job.notes.all()``, which a list prefetches."""
    members: dict[str, Any] = {}
    for note in job.notes.all():
        if note.kind == Note.Kind.KEYWORDS:
            members["keywords"] = note_representation(note)
        else:
            members.setdefault("notes", {})[note.template_slug] = note_representation(note)
    return members


def json_with_members(chunks: Iterable[bytes], members: dict[str, Any]) -> Iterator[bytes]:
    """A stored JSON object streamed as it is read, with ``members`` added before its
    closing brace (the result JSON with its notes: the stored file is never rewritten)."""
    tail = b""
    for chunk in chunks:
        tail += chunk
        if len(tail) > TAIL_BYTES:
            yield tail[:-TAIL_BYTES]
            tail = tail[-TAIL_BYTES:]
    body = tail.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("the stored result is not a JSON object")
    body = body[:-1].rstrip()
    added = json.dumps(members, ensure_ascii=False, indent=2)[1:-1].strip()
    yield body + (b"" if body.endswith(b"{") else b",\n  ") + added.encode() + b"\n}\n"


TAIL_BYTES = 64  # held back: the stored object's closing brace and whitespace after it
