"""Optional correction of low-confidence segments by an OpenAI-compatible model.

Off by default. Text leaves the machine only to hosts on ``SCRIBE_LLM_ALLOWED_HOSTS``,
checked before any connection and at every redirect by scribe's one outbound client
(``scribe.egress``; the endpoint comes from settings, never from a request). Every send is
audited by the caller's ``audit`` callback with the destination finally reached. A reply
that drops a glossary term present in the original, is empty, or is far longer or shorter,
is rejected; any failure keeps the uncorrected text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai

from scribe.egress import Egress, EgressRefused, refusal

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


def egress_for(config: LLMConfig) -> Egress:
    return Egress(config.allowed_hosts, setting="SCRIBE_LLM_ALLOWED_HOSTS")


def check_egress(config: LLMConfig) -> Egress:
    """Refuse, before any connection, an endpoint that is not allowed; return its egress."""
    egress = egress_for(config)
    try:
        egress.check(config.base_url)
    except EgressRefused as exc:
        raise EgressRefused(f"LLM endpoint {exc}; nothing was sent.") from None
    return egress


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


SYSTEM_PROMPT = (
    "You correct speech-recognition errors in one sentence of a transcript. The language is "
    "{language}; English technical terms stay in English. Keep these terms exactly as "
    "written: {terms}. Change only what is clearly misrecognised. Reply with the corrected "
    "sentence only, nothing else."
)


@dataclass(frozen=True)
class Correction:
    text: str | None  # None: keep the original
    outcome: str


def validate_reply(original: str, reply: str, terms: Sequence[str]) -> str | None:
    """Return why the reply is rejected, or None when it is acceptable."""
    if not reply.strip():
        return "empty reply"
    missing = [t for t in terms if t in original and t not in reply]
    if missing:
        return f"reply dropped glossary terms {missing}"
    if not 0.5 <= len(reply) / max(1, len(original)) <= 2.0:
        return "reply length differs too much from the original"
    return None


def correct(
    text: str,
    *,
    before: str,
    after: str,
    language: str,
    terms: Sequence[str],
    config: LLMConfig,
    audit: Audit,
) -> Correction:
    """Ask the model to correct ``text`` (with its neighbours as context)."""
    egress = check_egress(config)
    masked, mapping = mask(text) if config.mask_pii else (text, {})
    context_before = mask(before)[0] if config.mask_pii else before
    context_after = mask(after)[0] if config.mask_pii else after
    user = (
        f"Previous sentence: {context_before}\nSentence to correct: {masked}\n"
        f"Next sentence: {context_after}"
    )
    system = SYSTEM_PROMPT.format(language=language, terms=", ".join(terms) or "(none)")
    sent = len(system) + len(user)
    client = openai.OpenAI(
        base_url=config.base_url,
        api_key=config.api_key or "unused",
        timeout=config.timeout_s,
        max_retries=0,
        http_client=egress.client(timeout_s=config.timeout_s),
    )
    try:
        response = client.chat.completions.create(
            model=config.model,
            temperature=0,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        )
        reply = (response.choices[0].message.content or "").strip()
    except (openai.OpenAIError, EgressRefused) as exc:
        # The text reached the endpoint; where it was sent on from is refused (a redirect).
        refused = refusal(exc)
        outcome = f"refused: {refused}" if refused else f"failed: {type(exc).__name__}"
        audit(sent, outcome[:200], egress.destination)
        return Correction(None, outcome)
    finally:
        client.close()
    reply = unmask(reply, mapping)
    problem = validate_reply(text, reply, terms)
    outcome = f"rejected: {problem}" if problem else "accepted"
    audit(sent, outcome, egress.destination)
    return Correction(None if problem else reply, outcome)
