from __future__ import annotations

import logging

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.db.models.signals import post_migrate

from scribe.db import process_role
from scribe.schedules import schedules_ensure

logger = logging.getLogger(__name__)

SCHEDULES = {
    # name: (task, minutes between runs)
    # Also sends again the queued jobs whose broker message was lost, and finishes
    # erasures a dead process left.
    "scribe: recover jobs of dead workers": ("transcription.tasks.jobs_recover", 1),
    # Erases expired results and deletes expired records (transcription/erasure.py).
    "scribe: purge expired results": ("transcription.tasks.results_purge", 60),
}


def ensure_schedules(**kwargs) -> None:
    """Create or update the job app's django-q2 schedules (idempotent)."""
    schedules_ensure(SCHEDULES)


def warm_up_worker(sender, proc_name, **kwargs) -> None:
    """In a freshly started django-q2 worker: recover jobs of dead siblings, load the model.

    Runs after the worker process has started, never in the cluster's parent (CUDA does
    not survive fork). A missing model is logged; its jobs then fail with the same message.
    """
    from scribe import metrics as scribe_metrics
    from scribe.db import unit_of_work
    from transcription import lanes, recovery
    from transcription.engine import EngineError

    with unit_of_work():  # an idle worker keeps no connection
        recovery.jobs_recover()
    try:
        model = lanes.lane_model_name("batch")
        loaded = lanes.model_load(model=model, plan=lanes.device_plan_build(model=model))
        scribe_metrics.model_loaded(
            lane="batch",
            model=loaded.name,
            device=loaded.device,
            compute_type=loaded.compute_type,
            degraded=bool(loaded.fallback),
        )
    except EngineError as exc:
        logger.error("worker %s could not load its model: %s", proc_name, exc.message)


def release_connections(sender, **kwargs) -> None:
    """After each task in a django-q2 worker: give the connection back (django-q2 closes
    old connections only before a task, so an idle worker would keep one)."""
    from django.db import close_old_connections

    close_old_connections()


# The lanes whose model a worker process loads, by process role (scribe.db.process_role).
WORKER_LANES = {"qcluster": ("batch",), "realtime": ("realtime",)}


@checks.register("models")
def workers_have_their_models(app_configs, **kwargs):
    """A batch or realtime worker refuses to start without its model on disk."""
    from transcription.engine.bundles import lane_model_missing
    from transcription.lanes import lane_model_name

    errors = []
    for lane in WORKER_LANES.get(process_role(), ()):
        missing = lane_model_missing(lane_model_name(lane), models_dir=settings.SCRIBE_MODELS_DIR)
        if missing:
            errors.append(
                checks.Error(
                    f"The {lane} worker has no model to load: {missing}",
                    hint=f"Fetch it (manage.py models fetch {lane}, with network access) or "
                    "import an offline copy (manage.py models import PATH --name NAME).",
                    id="transcription.E001",
                )
            )
    return errors


class TranscriptionConfig(AppConfig):
    name = "transcription"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_execute_in_worker, post_spawn

        from transcription.erasure import job_erase_if_requested
        from transcription.models import job_ended

        job_ended.connect(job_erase_if_requested, dispatch_uid="scribe-erase-on-end")
        post_migrate.connect(ensure_schedules, sender=self)
        post_spawn.connect(warm_up_worker, dispatch_uid="scribe-warm-up")
        post_execute_in_worker.connect(release_connections, dispatch_uid="scribe-release")
