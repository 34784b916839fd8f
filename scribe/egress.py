"""One outbound HTTP client for everything scribe sends out (LLM correction, callbacks).

Text leaves the machine only to hosts on an allowlist. The client checks every hop before
it connects — the first request and every redirect — so a redirect to a host off the list
is never followed, whatever the server answers. Each destination's name is resolved and
refused when any address it resolves to is link-local, a cloud metadata address or
unique-local (169.254.0.0/16, fe80::/10, fd00::/8…) unless that address itself is on the
allowlist: an allowlisted name that an attacker points at 169.254.169.254 reaches
nothing. The destination finally reached (or refused) is kept for the audit record.

Known limit: the name is resolved for the check and again by the connection (httpx has no
hook to pin the address), so a DNS answer that changes between the two is not caught.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx2  # the HTTP library the openai SDK takes as its http_client

# Addresses that serve a host's own secrets or its link, never a text correction service.
FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00::/8", "100.100.100.200/32", "fd00:ec2::/32")
)


class EgressRefused(Exception):  # noqa: N818 - a refusal, reported as such
    """Nothing was sent: the destination is not allowed. ``str()`` says why."""


@dataclass
class Egress:
    """The allowlist of one kind of outbound traffic, and what it reached."""

    allowed_hosts: Iterable[str]
    setting: str = "the egress allowlist"  # named in refusals, e.g. SCRIBE_LLM_ALLOWED_HOSTS
    destination: str = ""  # the last URL reached or refused
    _allowed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._allowed = frozenset(h.strip().lower().strip("[]") for h in self.allowed_hosts)

    def check(self, url: httpx2.URL | str, *, redirect: bool = False) -> None:
        """Raise EgressRefused unless ``url`` may be contacted."""
        url = httpx2.URL(url)
        host = url.host.lower()
        self.destination = str(url)
        what = f"redirect to {host}" if redirect else f"host {host or '(none)'}"
        if host not in self._allowed:
            raise EgressRefused(
                f"{what} is not in {self.setting} ({', '.join(sorted(self._allowed)) or 'empty'})"
            )
        for address in resolve(host, url.port or (443 if url.scheme == "https" else 80)):
            if address in self._allowed:
                continue
            ip = ipaddress.ip_address(address)
            if any(ip in network for network in FORBIDDEN_NETWORKS):
                raise EgressRefused(
                    f"{what} resolves to {address}, a link-local or metadata address; "
                    f"list {address} in {self.setting} to allow it"
                )

    def client(self, *, timeout_s: float) -> httpx2.Client:
        """An httpx client that checks every hop against this allowlist before it goes."""

        def before_request(request: httpx2.Request) -> None:
            self.check(request.url)

        def after_response(response: httpx2.Response) -> None:
            if response.has_redirect_location:
                target = response.request.url.join(response.headers["Location"])
                self.check(target, redirect=True)

        return httpx2.Client(
            timeout=timeout_s,
            follow_redirects=True,
            event_hooks={"request": [before_request], "response": [after_response]},
        )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a literal address is itself)."""
    try:
        return [ipaddress.ip_address(host).compressed]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EgressRefused(f"host {host} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(exc: BaseException) -> EgressRefused | None:
    """The egress refusal behind an exception a client library wrapped, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EgressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
