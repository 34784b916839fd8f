"""Optional correction of low-confidence segments by an OpenAI-compatible model.

Off by default; the endpoint, its egress check and PII masking are ``scribe/llm.py``'s.
Every send is audited by the caller's ``audit`` callback with the destination finally
reached. A reply that drops a glossary term present in the original, is empty, or is far
longer or shorter, is rejected; any failure keeps the uncorrected text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import openai

from scribe.egress import EgressRefused, refusal
from scribe.llm import Audit, LLMConfig, chat_client, check_egress, mask, unmask

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
    client = chat_client(config, egress)
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
