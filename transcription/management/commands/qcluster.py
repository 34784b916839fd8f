"""manage.py qcluster: django-q2's cluster, sized by scribe's device plan.

Each worker process holds one batch model, so the number of workers is the plan's (VRAM
per model on a GPU, cores and RAM on the CPU) unless SCRIBE_WORKERS says otherwise. The
plan is computed in a child process: CUDA must never be initialised in the cluster's
parent, because the workers are forked from it. ``--name notes`` starts the notes queue's
workers instead (SCRIBE_NOTES_WORKERS, no model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings
from django.core.management.base import CommandError
from django_q.conf import Conf
from django_q.management.commands.qcluster import Command as QClusterCommand

NOTES_CLUSTER = "notes"  # `--name notes`: the notes queue (settings.SCRIBE_NOTES_QUEUE)


def planned_workers() -> int:
    """Total batch workers of the device plan, computed by `manage.py detect` in a child."""
    result = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "detect", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise CommandError(f"could not plan devices: {result.stderr.strip()}")
    plan = json.loads(result.stdout)["plans"]["batch"]
    return sum(a["workers"] for a in plan["assignments"])


class Command(QClusterCommand):
    help = "Start the batch workers: a django-q2 cluster with one model per worker process."

    def handle(self, *args, **options):
        named = options.get("cluster_name") or os.environ.get("Q_CLUSTER_NAME")
        if named in (NOTES_CLUSTER, settings.SCRIBE_NOTES_QUEUE):
            # The notes queue's workers hold no model: they wait for an LLM. django-q2 reads
            # its settings once, at import: the notes cluster's are set here.
            alt = settings.SCRIBE_NOTES_CLUSTER
            Conf.CLUSTER_NAME = settings.SCRIBE_NOTES_QUEUE
            Conf.WORKERS, Conf.QUEUE_LIMIT = alt["workers"], alt["queue_limit"]
            Conf.TIMEOUT, Conf.RETRY, Conf.LABEL = alt["timeout"], alt["retry"], alt["label"]
            self.stderr.write(f"scribe: starting {Conf.WORKERS} notes worker(s)")
            super().handle(*args, **{**options, "cluster_name": settings.SCRIBE_NOTES_QUEUE})
            return
        workers = settings.SCRIBE_WORKERS or planned_workers()
        Conf.WORKERS = workers
        Conf.QUEUE_LIMIT = workers  # prefetch one task per worker; the rest stay queued
        self.stderr.write(f"scribe: starting {workers} batch worker(s)")
        super().handle(*args, **options)
