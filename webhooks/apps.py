from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from scribe.schedules import schedules_ensure

SCHEDULE_NAME = "scribe: resend lost webhook deliveries"
JOB_EVENTS_SWEEP_NAME = "scribe: call back job ends whose message was lost"
JOB_EVENTS_SWEEP_TASK = "webhooks.tasks.job_events_sweep"


def ensure_schedule(**kwargs) -> None:
    """Create or update the minute schedules that hand on job events whose prompt message
    was lost and resend overdue deliveries (idempotent)."""
    schedules_ensure(
        {
            SCHEDULE_NAME: ("webhooks.tasks.deliveries_recover", 1),
            JOB_EVENTS_SWEEP_NAME: (JOB_EVENTS_SWEEP_TASK, 1),
        }
    )


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from transcription.models import job_erased
        from webhooks.services import deliveries_erase

        post_migrate.connect(ensure_schedule, sender=self)
        job_erased.connect(deliveries_erase, dispatch_uid="scribe-erase-deliveries")
