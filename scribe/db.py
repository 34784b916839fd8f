"""Database connections: bounded in every process, returned after each unit of work.

Under ASGI every request's sync work runs in a thread of its own, so Django's persistent
connections (``CONN_MAX_AGE > 0``) pile up, one per dead thread (Django ticket #33497).
scribe never keeps a connection past a unit of work (``CONN_MAX_AGE=0``); on PostgreSQL a
per-process psycopg pool (Django's native ``OPTIONS["pool"]``) hands connections out and
takes them back, so a process never holds more than ``SCRIBE_DB_POOL_MAX`` and a request
that cannot get one within ``SCRIBE_DB_POOL_TIMEOUT_S`` fails cleanly (503) instead of
opening one more. See "Database connections" in docs/operations.md for the arithmetic.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Seconds a new server connection may take before it counts as refused.
CONNECT_TIMEOUT_S = 5

T = TypeVar("T")


def process_role(argv: Sequence[str] = sys.argv) -> str:
    """Name this process for ``pg_stat_activity.application_name``: web, qcluster, …"""
    first = argv[0] if argv else ""
    if any(server in first for server in ("daphne", "uvicorn", "gunicorn")):
        return "web"  # also `python -m daphne`, whose argv[0] is daphne/__main__.py
    program = Path(first).name
    if len(argv) > 1 and program == "manage.py":
        return {"runworker": "realtime", "serve": "web"}.get(argv[1], argv[1])
    return program.removesuffix(".py") or "python"


def postgres_connection_policy(
    database: dict[str, Any],
    *,
    pool_min: int,
    pool_max: int,
    pool_timeout_s: int,
    application_name: str,
) -> dict[str, Any]:
    """Return a PostgreSQL ``DATABASES`` entry with scribe's connection policy applied.

    ``pool_max=0`` turns the pool off: a connection is then opened per unit of work and
    closed after it, which is bounded only by the process's concurrency.
    """
    if pool_max and pool_min > pool_max:
        raise ImproperlyConfigured(
            f"SCRIBE_DB_POOL_MIN={pool_min} is above SCRIBE_DB_POOL_MAX={pool_max}: "
            "the pool cannot keep more connections open than it may hold."
        )
    options = dict(database.get("OPTIONS") or {})
    options.setdefault("application_name", application_name[:63])
    options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    if pool_max:
        options["pool"] = {
            "min_size": pool_min,
            "max_size": pool_max,
            "timeout": pool_timeout_s,
            "name": application_name,
        }
    # Pooling requires CONN_MAX_AGE=0; health checks make the pool test a connection
    # before handing it out, so a restarted server costs one reconnect, not an error.
    return {**database, "OPTIONS": options, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": True}


def forget_inherited_pools() -> None:
    """In a forked child, drop the connection pools and connections of the parent.

    django-q2 forks its workers from a parent that has used the database. The parent's
    pool holds the parent's sockets and its worker threads do not exist in the child, so
    the child must build its own. psycopg never closes a connection from a process that
    did not open it, so dropping them here leaves the parent's sessions intact.
    """
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper
    except ImportError:  # psycopg is not installed: nothing to forget
        return
    # A private class attribute (Django 5.1+): the pools of every alias, keyed by alias.
    DatabaseWrapper._connection_pools.clear()  # type: ignore[attr-defined]
    from django.db import connections

    for wrapper in connections.all(initialized_only=True):
        wrapper.connection = None


os.register_at_fork(after_in_child=forget_inherited_pools)


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Run database work with a usable connection and give it back afterwards.

    For threads Django's request cycle does not manage (heartbeats, the realtime decode
    thread): a connection broken by a server restart is replaced, and none is kept idle.
    """
    from django.db import close_old_connections

    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


def pool_saturation() -> str | None:
    """Say so when this process's pool has no connection to give; None otherwise."""
    from django.db import connection

    pool = getattr(connection, "pool", None)
    if pool is None:
        return None
    stats = pool.get_stats()
    size, most = stats.get("pool_size", 0), stats.get("pool_max", 0)
    if stats.get("pool_available", 0) == 0 and size >= most:
        waiting = stats.get("requests_waiting", 0)
        return (
            f"database connection pool exhausted: {size} of {most} connections in use, "
            f"{waiting} waiting (raise SCRIBE_DB_POOL_MAX or add a PgBouncer)"
        )
    return None


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors after which the same work can succeed later: the database could not be
    reached or dropped the connection (a restart, a failover, an administrator's kill),
    or a lock was not granted in time. Never an integrity or programming error."""
    from django.db import InterfaceError, OperationalError

    return (OperationalError, InterfaceError)


def retry_transient(
    work: Callable[[], T], *, what: str, attempts: int = 4, first_delay_s: float = 0.5
) -> T:
    """Run ``work``; after a transient database error, take a fresh connection and try
    again, waiting 0.5, 1, 2 … s, at most ``attempts`` times in all. The last error is
    raised. ``work`` must be safe to repeat (scribe's conditional transitions are)."""
    from django.db import connection

    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except transient_errors() as exc:
            if attempt == attempts:
                raise
            logger.warning(
                "%s: database error (%s); retry %d of %d in %.1f s",
                what,
                exc,
                attempt,
                attempts - 1,
                delay,
            )
            connection.close()  # a broken connection is not handed out again
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises
