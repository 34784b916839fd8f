"""The django-q2 schedules each app relies on, created or updated after every migrate."""

from __future__ import annotations

from collections.abc import Mapping


def schedules_ensure(schedules: Mapping[str, tuple[str, int]]) -> None:
    """Create or update ``schedules`` (name → (task, minutes between runs)); idempotent.
    They run on the default cluster (the batch workers' scheduler)."""
    from django_q.models import Schedule

    for name, (func, minutes) in schedules.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
