"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django_q.brokers import get_broker

from scribe.db import pool_saturation
from transcription.engine import ModelNotFoundError, resolve_model
from transcription.lanes import configured_lanes, lane_model_name


def live(request) -> JsonResponse:
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _database() -> str | None:
    # Saying so beats waiting SCRIBE_DB_POOL_TIMEOUT_S for a connection that will not come.
    exhausted = pool_saturation()
    if exhausted:
        return exhausted
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {exc}"
    return None


def _broker() -> str | None:
    try:
        if not get_broker().ping():
            return "queue broker does not answer"
    except Exception as exc:
        return f"queue broker unreachable: {exc}"
    return None


def _models() -> list[str]:
    problems = []
    for lane in configured_lanes():
        try:
            resolve_model(
                lane_model_name(lane), models_dir=settings.SCRIBE_MODELS_DIR, offline=True
            )
        except ModelNotFoundError as exc:
            problems.append(f"{lane} model: {exc.message}")
    return problems


def ready(request) -> JsonResponse:
    """Ready when the database and broker answer and the model of every lane this host
    serves (SCRIBE_LANES) is on disk."""
    problems = [p for p in (_database(), _broker()) if p] + _models()
    body = {"status": "ready" if not problems else "not_ready", "problems": problems}
    return JsonResponse(body, status=200 if not problems else 503)
