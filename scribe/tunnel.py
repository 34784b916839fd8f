"""Public tunnels for `manage.py serve --tunnel`: hosts without a public IP (Colab, a laptop).

The tunnel client is an operator's program found on PATH; scribe starts it as a child,
reads the public URL from its log and stops it with the server. Never on by default:
a tunnel publishes the API on the internet.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass

# cloudflared prints its quick tunnel's URL in a box on stderr; the same lines also carry
# links to cloudflare.com's terms, so only a trycloudflare.com host counts.
_CLOUDFLARE_URL = re.compile(r"https://[a-z0-9-]+\.trycloudflare\.com\b")


@dataclass(frozen=True)
class TunnelClient:
    name: str
    program: str
    install: str  # one line: how to get the program

    def command(self, program_path: str, local_url: str) -> list[str]:
        if self.name == "cloudflare":
            return [program_path, "tunnel", "--no-autoupdate", "--url", local_url]
        return [program_path, "http", local_url, "--log", "stdout", "--log-format", "json"]

    def parse_line(self, line: str) -> str | None:
        """Return the public URL if this log line announces it."""
        if self.name == "cloudflare":
            return cloudflared_url(line)
        return ngrok_url(line)

    def parse_error(self, line: str) -> str | None:
        """Return the client's own error if this log line is a fatal one."""
        if self.name == "ngrok":
            return ngrok_error(line)
        return cloudflared_error(line)


CLIENTS = {
    "cloudflare": TunnelClient(
        "cloudflare",
        "cloudflared",
        "cloudflared is not on PATH: install it from "
        "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/"
        "downloads/ (Debian/Ubuntu: the cloudflared .deb; macOS: brew install cloudflared), "
        "or serve without --tunnel.",
    ),
    "ngrok": TunnelClient(
        "ngrok",
        "ngrok",
        "ngrok is not on PATH: install it from https://ngrok.com/download and run "
        "`ngrok config add-authtoken TOKEN` once, or serve without --tunnel.",
    ),
}


def find_client(name: str) -> tuple[TunnelClient, str | None]:
    """Return the client named ``name`` and its program's path (None: not installed)."""
    client = CLIENTS[name]
    return client, shutil.which(client.program)


def cloudflared_url(line: str) -> str | None:
    match = _CLOUDFLARE_URL.search(line)
    return match.group(0) if match else None


def cloudflared_error(line: str) -> str | None:
    # cloudflared logs "<time> ERR <message>"; a quick tunnel that cannot be created says
    # so on one such line and exits.
    if " ERR " in line and "quick tunnel" in line.lower():
        return line.split(" ERR ", 1)[1].strip()
    return None


def _ngrok_record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def ngrok_url(line: str) -> str | None:
    """ngrok's JSON log: ``{"msg": "started tunnel", "obj": "tunnels", "url": …}``."""
    record = _ngrok_record(line)
    if record and record.get("msg") == "started tunnel":
        url = str(record.get("url", ""))
        return url if url.startswith("https://") else None
    return None


def ngrok_error(line: str) -> str | None:
    record = _ngrok_record(line)
    if record and record.get("lvl") in ("eror", "crit") and record.get("err"):
        return " ".join(str(record["err"]).split())
    return None
