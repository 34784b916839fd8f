"""Glossaries at work: a caller's glossary, its specs, a job's bias and review, LLM sends.

Decoder bias lives in ``glossary.bias``, the review of segments in ``glossary.review``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.conf import settings

from glossary.bias import Bias, HotwordChoice, glossary_bias
from glossary.flags import DEFAULT_HALLUCINATIONS
from glossary.models import Glossary, HallucinationPhrase, LLMAuditRecord, Rule
from glossary.normalize import RuleSpec, TermSpec
from glossary.review import post_process
from scribe.llm import Audit, llm_config


def glossary_for(*, owner, glossary_id: int) -> Glossary:
    """The caller's glossary; Glossary.DoesNotExist where it may not use it."""
    return Glossary.objects.usable_by(owner).get(pk=glossary_id)


def term_specs(glossary: Glossary | None) -> list[TermSpec]:
    if glossary is None:
        return []
    return [TermSpec(t.canonical, tuple(t.variants), t.hotword) for t in glossary.terms.all()]


def rule_specs(glossary: Glossary | None) -> list[RuleSpec]:
    """Enabled rules in order: global ones and the glossary's own, interleaved by order."""
    rules = Rule.objects.filter(enabled=True, glossary__isnull=True)
    if glossary is not None:
        rules = rules | Rule.objects.filter(enabled=True, glossary=glossary)
    return [
        RuleSpec(r.kind, r.pattern, r.replacement, r.case_sensitive)
        for r in rules.order_by("order", "id")
    ]


def hallucination_phrases() -> list[str]:
    phrases = list(HallucinationPhrase.objects.filter(enabled=True).values_list("text", flat=True))
    return phrases or [p for group in DEFAULT_HALLUCINATIONS.values() for p in group]


def llm_audit(*, owner=None, key_prefix: str = "", job=None) -> Audit:
    endpoint = settings.SCRIBE_LLM_BASE_URL

    def record(characters: int, outcome: str, destination: str) -> None:
        LLMAuditRecord.objects.create(
            owner=owner,
            key_prefix=key_prefix,
            job=job,
            endpoint=endpoint,
            destination=destination[:300],
            characters_sent=characters,
            outcome=outcome[:200],
        )

    return record


def text_correct(
    *,
    text: str,
    language: str,
    glossary: Glossary | None,
    mode: str,
    owner=None,
    key_prefix: str = "",
) -> dict[str, Any]:
    """Run the jobs' post-processing on a piece of text: see what a glossary does."""
    pseudo = {
        "language": language or "",
        "segments": [
            {
                "id": 0,
                "start": 0.0,
                "end": 0.0,
                "text": text,
                "avg_logprob": 0.0,
                "no_speech_prob": 0.0,
                "compression_ratio": 0.0,
                "words": None,
            }
        ],
        "speech": [],
        "run": {},
    }
    processed = post_process(
        pseudo,
        mode=mode,
        terms=term_specs(glossary),
        rules=rule_specs(glossary),
        phrases=hallucination_phrases(),
        llm_settings=llm_config(),
        audit=llm_audit(owner=owner, key_prefix=key_prefix),
        llm_everything=True,
    )
    # A text the review takes for a hallucination is set apart uncorrected, as a job's
    # segment would be (docs/glossary.md): show it with the flags that set it apart.
    suppressed = processed["suppressed_segments"]
    segment = (suppressed or processed["segments"])[0]
    body = {
        "text": segment["text"],
        "raw_text": text,
        "mode": mode,
        "stages": processed["post_correction"]["stages"],
        "flags": segment["flags"],
        "suppressed": bool(suppressed),
    }
    if "llm_error" in processed:
        body["llm_error"] = processed["llm_error"]
    return body


# --- jobs -------------------------------------------------------------------------------


def job_glossary(job) -> Glossary | None:
    glossary_id = job.opts.glossary_id
    if not glossary_id:
        return None
    return Glossary.objects.usable_by(job.owner).filter(pk=glossary_id).first()


def job_bias(job, *, count_tokens: Callable[[str], int]) -> Bias:
    """The decoder bias of a job: its inline hotwords, then its glossary's terms. With a
    glossary, hotwords are chosen per window (``job_hotword_choice``)."""
    terms = term_specs(job_glossary(job))
    return glossary_bias(
        terms=terms,
        extra_hotwords=job.opts.hotwords,
        count_tokens=count_tokens,
        hotwords_per_window=bool(terms),
    )


def job_hotword_choice(job, *, count_tokens: Callable[[str], int]) -> HotwordChoice | None:
    """Per-window hotwords for a job with a glossary; None without one (its own hotwords,
    if any, are then offered to every window)."""
    terms = term_specs(job_glossary(job))
    if not terms:
        return None
    return HotwordChoice(terms=terms, extra_hotwords=job.opts.hotwords, count_tokens=count_tokens)


def job_result_post_process(job, result: dict[str, Any], *, bias: Bias) -> dict[str, Any]:
    """Flags, the requested correction stages and the bias used, added to a job's result."""
    glossary = job_glossary(job)
    mode = job.opts.post_correction
    processed = post_process(
        result,
        mode=mode,
        terms=term_specs(glossary),
        rules=rule_specs(glossary),
        phrases=hallucination_phrases(),
        llm_settings=llm_config() if mode == "llm" else None,
        audit=llm_audit(owner=job.owner, job=job),
        drop_flagged=job.opts.drop_flagged,
    )
    processed["bias"] = asdict(bias)
    return processed
