"""django-q2 tasks of the notes queue: thin entry points that call one service each."""

from __future__ import annotations

from notes import services


def note_run(note_id: int) -> None:
    services.note_run(note_id=note_id)


def notes_sweep() -> int:
    return services.notes_sweep()
