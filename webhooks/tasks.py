"""django-q2 tasks: thin entry points that call one service each."""

from __future__ import annotations

from webhooks import services


def delivery_attempt(delivery_id: str, number: int) -> None:
    services.delivery_attempt(delivery_id=delivery_id, number=number)


def deliveries_recover() -> int:
    return services.deliveries_resend_lost()
