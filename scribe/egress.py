"""One outbound HTTP client for everything scribe sends out (LLM correction, callbacks).

Text leaves the machine only to hosts on an allowlist. The client checks every hop before
it connects — the first request and every redirect — so a redirect to a host off the list
is never followed, whatever the server answers. Each destination's name is resolved and
refused when any address it resolves to is link-local, a cloud metadata address or
unique-local (169.254.0.0/16, fe80::/10, fd00::/8…) unless that address itself is on the
allowlist: an allowlisted name that an attacker points at 169.254.169.254 reaches
nothing. The name is resolved once: the connection dials the address that was checked,
so a DNS answer that changes in between (rebinding) reaches nothing either. The
destination finally reached (or refused) is kept for the audit record.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore2
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
    _checked: dict[tuple[str, int], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._allowed = frozenset(h.strip().lower().strip("[]") for h in self.allowed_hosts)

    def address(self, host: str, port: int) -> str:
        """The address checked for ``host``: the only one a connection may dial."""
        try:
            return self._checked[(host.lower().strip("[]"), port)]
        except KeyError:
            raise EgressRefused(f"host {host}:{port} was not checked; nothing was sent") from None

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
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = resolve(host, port)
        for address in addresses:
            if address in self._allowed:
                continue
            ip = ipaddress.ip_address(address)
            if any(ip in network for network in FORBIDDEN_NETWORKS):
                raise EgressRefused(
                    f"{what} resolves to {address}, a link-local or metadata address; "
                    f"list {address} in {self.setting} to allow it"
                )
        self._checked[(host, port)] = addresses[0]

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
            transport=_PinnedTransport(self),
        )


class _PinnedBackend(httpcore2.SyncBackend):
    """Dials the address the egress check resolved, never the name again."""

    def __init__(self, egress: Egress) -> None:
        self.egress = egress

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        address = self.egress.address(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class _PinnedTransport(httpx2.HTTPTransport):
    """httpx2's transport with a connection pool that dials checked addresses only.

    httpx2 offers no argument for the pool's network backend, so the pool is built again
    with one (TLS still verifies the certificate against the host name).
    """

    def __init__(self, egress: Egress) -> None:
        super().__init__()
        self._pool = httpcore2.ConnectionPool(
            ssl_context=httpx2.create_ssl_context(), network_backend=_PinnedBackend(egress)
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
