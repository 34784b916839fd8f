"""django-q2 tasks: thin entry points that call one service each."""

from __future__ import annotations

from webhooks import services


def job_event_deliver(event_id: int) -> int:
    return services.job_event_deliver(event_id=event_id)


def job_events_sweep() -> int:
    return services.job_events_sweep()


def delivery_attempt(delivery_id: str, number: int) -> None:
    services.delivery_attempt(delivery_id=delivery_id, number=number)


def deliveries_recover() -> int:
    return services.deliveries_resend_lost()
