from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

SCHEDULE_NAME = "scribe: resend lost webhook deliveries"


def ensure_schedule(**kwargs) -> None:
    """Create or update the minute schedule that resends overdue deliveries (idempotent)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "webhooks.tasks.deliveries_recover",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedule, sender=self)
