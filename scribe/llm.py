"""The one way scribe talks to an OpenAI-compatible LLM: its configuration, the egress
check before any connection, PII masking of what is sent, and the client.

Off unless ``SCRIBE_LLM_BASE_URL`` is set. Text leaves the machine only to hosts on
``SCRIBE_LLM_ALLOWED_HOSTS``, checked before any connection and at every redirect by
scribe's one outbound client (``scribe.egress``); the endpoint comes from settings, never
from a request. Users: the glossary's correction of low-confidence segments
(``glossary/llm.py``) and notes and keywords (``notes/``). Each caller audits every send
(``glossary.services.llm_audit``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai
from django.conf import settings

from scribe.egress import Egress, EgressRefused

ALLOWED_HOSTS_SETTING = "SCRIBE_LLM_ALLOWED_HOSTS"

# An address begins where its run of address characters does: searching from inside one
# again (as without the lookbehind) reads a long run of letters once per letter.
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<!\d)(\+?\d[\d\- ]{7,}\d)(?!\d)")


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str
    allowed_hosts: tuple[str, ...]
    timeout_s: float = 20.0
    mask_pii: bool = True

    @property
    def host(self) -> str:
        return (urlsplit(self.base_url).hostname or "").lower()


# (characters sent, outcome, destination reached or refused)
Audit = Callable[[int, str, str], None]


def llm_config() -> LLMConfig | None:
    """This server's LLM, or None where none is configured (SCRIBE_LLM_BASE_URL unset)."""
    if not settings.SCRIBE_LLM_BASE_URL:
        return None
    return LLMConfig(
        base_url=settings.SCRIBE_LLM_BASE_URL,
        model=settings.SCRIBE_LLM_MODEL,
        api_key=settings.SCRIBE_LLM_API_KEY or "",
        timeout_s=settings.SCRIBE_LLM_TIMEOUT_S,
        allowed_hosts=tuple(settings.SCRIBE_LLM_ALLOWED_HOSTS),
        mask_pii=settings.SCRIBE_LLM_MASK_PII,
    )


def egress_for(config: LLMConfig) -> Egress:
    return Egress(config.allowed_hosts, setting=ALLOWED_HOSTS_SETTING)


def check_egress(config: LLMConfig) -> Egress:
    """Refuse, before any connection, an endpoint that is not allowed; return its egress."""
    egress = egress_for(config)
    try:
        egress.check(config.base_url)
    except EgressRefused as exc:
        raise EgressRefused(f"LLM endpoint {exc}; nothing was sent.") from None
    return egress


def chat_client(config: LLMConfig, egress: Egress, *, timeout_s: float | None = None):
    """An OpenAI client for ``config`` whose every hop ``egress`` checks; close it after."""
    timeout = timeout_s or config.timeout_s
    return openai.OpenAI(
        base_url=config.base_url,
        api_key=config.api_key or "unused",
        timeout=timeout,
        max_retries=0,
        http_client=egress.client(timeout_s=timeout),
    )


def mask(text: str) -> tuple[str, dict[str, str]]:
    """Replace e-mail addresses and phone numbers by placeholders; return the mapping.

    A placeholder is never one the text already holds ("[EMAIL1]" typed in it), so
    ``unmask`` gives back exactly the text."""
    mapping: dict[str, str] = {}

    def hide(kind: str):
        def replace(match: re.Match) -> str:
            number = len(mapping) + 1
            while f"[{kind}{number}]" in text or f"[{kind}{number}]" in mapping:
                number += 1
            token = f"[{kind}{number}]"
            mapping[token] = match.group(0)
            return token

        return replace

    masked = EMAIL.sub(hide("EMAIL"), text)
    masked = PHONE.sub(hide("PHONE"), masked)
    return masked, mapping


def unmask(text: str, mapping: dict[str, str]) -> str:
    for token, original in mapping.items():
        text = text.replace(token, original)
    return text
