from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from scribe.schedules import schedules_ensure

SWEEP_NAME = "scribe: run notes whose message was lost"
SWEEP_TASK = "notes.tasks.notes_sweep"


def ensure_schedule(**kwargs) -> None:
    """The minute schedule that sends pending notes again (idempotent)."""
    schedules_ensure({SWEEP_NAME: (SWEEP_TASK, 1)})


class NotesConfig(AppConfig):
    name = "notes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notes import services
        from notes.selectors import notes_status
        from transcription.models import job_ended, job_erased
        from transcription.selectors import SYSTEM_SECTIONS

        SYSTEM_SECTIONS["notes"] = notes_status

        post_migrate.connect(ensure_schedule, sender=self)
        job_ended.connect(services.notes_start_for, dispatch_uid="scribe-notes-start")
        job_erased.connect(services.notes_erase, dispatch_uid="scribe-notes-erase")
