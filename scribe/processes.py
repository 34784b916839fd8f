"""Facts about processes on this host, for whoever must tell a dead worker from a live one."""

from __future__ import annotations

import os

from django.conf import settings


def this_host() -> str:
    """This host's name as the database knows it (``SCRIBE_HOSTNAME``)."""
    return settings.SCRIBE_HOSTNAME


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
