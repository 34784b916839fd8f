from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

SCHEDULE_NAME = "scribe: resend lost webhook deliveries"
JOB_EVENTS_SWEEP_NAME = "scribe: call back job ends whose message was lost"
JOB_EVENTS_SWEEP_TASK = "webhooks.tasks.job_events_sweep"


def ensure_schedule(**kwargs) -> None:
    """Create or update the minute schedules that hand on job events whose prompt message
    was lost and resend overdue deliveries (idempotent)."""
    from django_q.models import Schedule

    for name, func in (
        (SCHEDULE_NAME, "webhooks.tasks.deliveries_recover"),
        (JOB_EVENTS_SWEEP_NAME, JOB_EVENTS_SWEEP_TASK),
    ):
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
        )


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from transcription.models import job_erased
        from webhooks.services import deliveries_erase

        post_migrate.connect(ensure_schedule, sender=self)
        job_erased.connect(deliveries_erase, dispatch_uid="scribe-erase-deliveries")
