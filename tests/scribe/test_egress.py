"""Outbound requests never leave the allowlist: redirects, metadata addresses, audits.

Two loopback addresses stand for two hosts: 127.0.0.1 is allowlisted, 127.0.0.2 is not.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest

from glossary.models import LLMAuditRecord
from glossary.review import post_process
from glossary.services import llm_audit
from scribe.egress import Egress, EgressRefused
from scribe.llm import LLMConfig
from tests.llm import FakeLLM

pytestmark = pytest.mark.django_db


class Redirector:
    """Answers every request on ``host`` with ``status`` and a Location elsewhere."""

    def __init__(self, host: str, status: int, location: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.base_url = f"http://{host}:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Redirector:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def elsewhere() -> FakeLLM:
    """The host off the allowlist: it would answer, were anything to reach it."""
    llm = FakeLLM(lambda user: "stolen")
    llm.server.server_close()
    llm.server = type(llm.server)(("127.0.0.2", 0), llm.server.RequestHandlerClass)
    llm.base_url = f"http://127.0.0.2:{llm.server.server_address[1]}/v1"
    return llm


def correct_with(base_url: str) -> dict:
    segment = {
        "id": 0,
        "start": 0.0,
        "end": 2.0,
        "text": " 브이엘엘엠 서빙이 느려요",
        "avg_logprob": -2.0,
        "no_speech_prob": 0.0,
        "compression_ratio": 1.0,
        "words": None,
    }
    return post_process(
        {"language": "ko", "segments": [segment], "speech": [], "run": {}},
        mode="llm",
        terms=[],
        rules=[],
        phrases=[],
        llm_settings=LLMConfig(
            base_url=base_url, model="m", api_key="k", allowed_hosts=("127.0.0.1",), timeout_s=5
        ),
        audit=llm_audit(),
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_off_the_allowlist_is_never_followed(status):
    with elsewhere() as target:
        location = f"{target.base_url}/chat/completions"
        with Redirector("127.0.0.1", status, location) as allowed:
            processed = correct_with(allowed.base_url)

    assert allowed.hits == 1
    assert target.requests == [], "nothing reached the host off the allowlist"
    assert processed["segments"][0]["text"] == " 브이엘엘엠 서빙이 느려요"
    record = LLMAuditRecord.objects.get()
    assert record.outcome.startswith("refused: redirect to 127.0.0.2")
    assert record.destination == location


def test_a_redirect_within_the_allowlist_is_followed_and_the_final_destination_audited():
    with FakeLLM(lambda user: "vLLM 서빙이 느려요") as final:
        location = f"{final.base_url}/chat/completions"
        with Redirector("127.0.0.1", 307, location) as allowed:
            processed = correct_with(allowed.base_url)

    assert processed["segments"][0]["text"] == " vLLM 서빙이 느려요"
    record = LLMAuditRecord.objects.get()
    assert record.outcome == "accepted"
    assert record.destination == location


def test_an_allowlisted_name_that_resolves_to_a_metadata_address_is_refused():
    egress = Egress(["llm.internal"], setting="SCRIBE_LLM_ALLOWED_HOSTS")
    metadata = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]

    with (
        mock.patch("socket.getaddrinfo", autospec=True, return_value=metadata),
        pytest.raises(EgressRefused, match="169.254.169.254, a link-local or metadata"),
    ):
        egress.check("http://llm.internal/v1")


def test_a_metadata_address_listed_itself_is_allowed():
    Egress(["169.254.10.1"]).check("http://169.254.10.1/v1")


def test_a_host_off_the_allowlist_is_refused_naming_the_setting():
    egress = Egress(["127.0.0.1"], setting="SCRIBE_LLM_ALLOWED_HOSTS")

    with pytest.raises(EgressRefused, match="host 127.0.0.2 is not in SCRIBE_LLM_ALLOWED_HOSTS"):
        egress.check("http://127.0.0.2:8000/v1")


def test_the_connection_dials_the_address_that_was_checked_not_a_new_dns_answer():
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def dns(host, port, *args, **kwargs):
        if host != "llm.internal":
            return real_getaddrinfo(host, port, *args, **kwargs)
        # Rebinding: the first answer passes the check, every later one is the metadata host.
        address = next(answers, "169.254.169.254")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    with FakeLLM(lambda user: "ok") as llm:
        port = llm.server.server_address[1]
        egress = Egress(["llm.internal"])
        with (
            mock.patch("socket.getaddrinfo", autospec=True, side_effect=dns),
            egress.client(timeout_s=5) as client,
        ):
            response = client.post(
                f"http://llm.internal:{port}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
            )

    assert response.status_code == 200
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://evil-llm.example/v1",  # ends with the allowed name
        "https://api.llm.example/v1",  # a subdomain of it
        "https://llm.example.evil.test/v1",  # starts with it
        "https://llm.exampl/v1",  # inside it
    ],
)
def test_only_the_exact_allowed_host_passes_not_names_that_contain_it(url):
    egress = Egress(["llm.example"], setting="SCRIBE_LLM_ALLOWED_HOSTS")
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", 443))]

    # DNS would answer for any of them: only the name check stands in the way.
    with mock.patch("socket.getaddrinfo", autospec=True, return_value=public):
        egress.check("https://LLM.example/v1")
        with pytest.raises(EgressRefused, match="is not in SCRIBE_LLM_ALLOWED_HOSTS"):
            egress.check(url)
