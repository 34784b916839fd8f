"""The web container's HEALTHCHECK: is daphne answering /health/live?

Stdlib only and quick (no Django start-up every 30 s). Django answers 400 to a Host it
is not configured for, so the request names a host from ALLOWED_HOSTS (or
ALLOWED_HOSTS_FILE), not the 127.0.0.1 it connects to: the check passes for any value
an operator sets. Exit 0 when live, 1 otherwise (what Docker expects).
"""

from __future__ import annotations

import http.client
import os
import sys
from pathlib import Path

PORT = int(os.environ.get("SCRIBE_HEALTHCHECK_PORT", "8000"))
TIMEOUT_S = 4


def host_header(allowed_hosts: str | None) -> str:
    """Return a Host value Django accepts under this ALLOWED_HOSTS setting."""
    if allowed_hosts is None:
        return "localhost"  # scribe's default list includes it
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if not entry or "*" in entry:  # "*" accepts any host; no other wildcard exists
            continue
        # ".example.com" allows the domain and its subdomains; a port is never part of it.
        return entry.lstrip(".")
    return "localhost"  # "*" or nothing listed: any host is accepted


def allowed_hosts_setting(environ: dict[str, str]) -> str | None:
    file_name = environ.get("ALLOWED_HOSTS_FILE")
    if file_name:
        return Path(file_name).read_text(encoding="utf-8").strip()
    return environ.get("ALLOWED_HOSTS")


def main() -> int:
    host = host_header(allowed_hosts_setting(dict(os.environ)))
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=TIMEOUT_S)
    try:
        connection.request("GET", "/health/live", headers={"Host": host})
        status = connection.getresponse().status
    except OSError as exc:
        sys.stderr.write(f"unhealthy: 127.0.0.1:{PORT} does not answer ({exc})\n")
        return 1
    finally:
        connection.close()
    if status != 200:
        sys.stderr.write(f"unhealthy: /health/live answered {status} to Host {host!r}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
