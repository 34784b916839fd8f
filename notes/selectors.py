"""Reads of the notes app: the notes queue at a glance, for ``GET /v1/system``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from notes.models import Note

# Notes waiting longer than this while an LLM is set: no notes worker is taking them.
STALLED_AFTER_S = 300


def notes_status() -> dict[str, Any]:
    """Whether notes can be made (an LLM is set), the queue they go through, how many wait
    and since when; ``problem`` says what to do when they wait with nobody to make them."""
    pending = Note.objects.filter(status=Note.Status.PENDING)
    first = pending.order_by("created_at").values_list("created_at", flat=True).first()
    age = round((timezone.now() - first).total_seconds(), 1) if first else None
    problem = None
    if not settings.SCRIBE_LLM_BASE_URL:
        problem = "No LLM is set (SCRIBE_LLM_BASE_URL): notes and keywords are refused."
    elif age is not None and age > STALLED_AFTER_S:
        problem = (
            f"The oldest pending note has waited {age / 60:.0f} min: start the notes worker "
            "(manage.py qcluster --name notes; serve and docker compose's notes profile start it)."
        )
    return {
        "llm_configured": bool(settings.SCRIBE_LLM_BASE_URL),
        "queue": settings.SCRIBE_NOTES_QUEUE,
        "pending": pending.count(),
        "oldest_pending_age_sec": age,
        "problem": problem,
    }
