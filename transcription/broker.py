"""What the django-q2 broker holds: the messages that will still reach a worker.

The database is the source of truth for the job queue; the broker only carries messages.
A message can be lost (Redis flushed or restarted without persistence), so recovery asks
the broker which jobs it still holds and sends the others again.
"""

from __future__ import annotations

import logging

from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage

logger = logging.getLogger(__name__)


def pending_task_names() -> set[str] | None:
    """Names of the tasks waiting in the broker; None when this broker cannot be read.

    Messages a cluster has already taken but not yet started (its prefetch) are not in
    the broker any more; sending such a job again is harmless, because only one worker
    can claim a queued job.
    """
    broker = get_broker()
    if isinstance(broker, Redis):
        payloads = [
            raw.decode() if isinstance(raw, bytes) else raw
            for raw in broker.connection.lrange(broker.list_key, 0, -1)
        ]
    elif isinstance(broker, ORM):
        # Taken messages stay in the table, locked, until acknowledged: count them too.
        payloads = list(
            OrmQ.objects.using(Conf.ORM)
            .filter(key=broker.list_key)
            .values_list("payload", flat=True)
        )
    else:
        return None
    names = set()
    for payload in payloads:
        try:
            task = SignedPackage.loads(payload)
        except BadSignature:
            logger.warning("a message in queue %s is not signed with this SECRET_KEY", broker)
            continue
        if isinstance(task, dict) and task.get("name"):
            names.add(task["name"])
    return names
