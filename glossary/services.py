"""Glossaries at work: decoder bias, post-correction stages, flags, LLM sends."""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from django.conf import settings

from glossary import llm
from glossary.diff import word_diff
from glossary.flags import DEFAULT_HALLUCINATIONS, hallucination_matcher, segment_flags, word_flags
from glossary.hearings import SURVEY_CLOSENESS, Edit, Reconciler, listened
from glossary.metrics import term_occurrences
from glossary.models import Glossary, HallucinationPhrase, LLMAuditRecord, Rule
from glossary.normalize import RuleSpec, TermSpec, apply_glossary, apply_rules
from glossary.offering import TermOffer
from glossary.soundalike import DEFAULT_THRESHOLD, SoundAlikeMatcher

# A looser match than correction's: enough to offer a term to the biased decode.
CANDIDATE_THRESHOLD = DEFAULT_THRESHOLD * 0.7

MODES = ("none", "glossary", "rules", "llm")
# Whisper's prompt holds at most 223 tokens (max_length // 2 - 1); hotwords and the
# initial prompt share it with the previous window's text, so each gets a part of it.
HOTWORDS_BUDGET_TOKENS = 96
PROMPT_BUDGET_TOKENS = 96


def glossary_for(*, owner, glossary_id: int) -> Glossary:
    return Glossary.objects.for_owner(owner).get(pk=glossary_id)


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


def llm_config() -> llm.LLMConfig | None:
    if not settings.SCRIBE_LLM_BASE_URL:
        return None
    return llm.LLMConfig(
        base_url=settings.SCRIBE_LLM_BASE_URL,
        model=settings.SCRIBE_LLM_MODEL,
        api_key=settings.SCRIBE_LLM_API_KEY or "",
        timeout_s=settings.SCRIBE_LLM_TIMEOUT_S,
        allowed_hosts=tuple(settings.SCRIBE_LLM_ALLOWED_HOSTS),
        mask_pii=settings.SCRIBE_LLM_MASK_PII,
    )


# --- decode-time bias ------------------------------------------------------------------


@dataclass(frozen=True)
class Bias:
    hotwords: str | None
    initial_prompt: str | None
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _fit(
    items: Sequence[str],
    render: Callable[[list[str]], str],
    count_tokens: Callable[[str], int],
    budget: int,
) -> tuple[list[str], list[str]]:
    kept: list[str] = []
    for item in items:
        if count_tokens(render([*kept, item])) <= budget:
            kept.append(item)
    return kept, [i for i in items if i not in kept]


def glossary_bias(
    *,
    terms: Sequence[TermSpec],
    extra_hotwords: Sequence[str] = (),
    count_tokens: Callable[[str], int],
    hotwords_budget: int = HOTWORDS_BUDGET_TOKENS,
    prompt_budget: int = PROMPT_BUDGET_TOKENS,
) -> Bias:
    """Hotwords and an initial prompt within Whisper's prompt budget, most important first.

    Order: the request's own hotwords, then glossary terms by priority. Whatever fits in
    neither budget is reported as dropped.
    """
    wanted_hot = list(dict.fromkeys([*extra_hotwords, *(t.canonical for t in terms if t.hotword)]))
    hot, _ = _fit(wanted_hot, lambda ws: " " + " ".join(ws), count_tokens, hotwords_budget)
    everything = list(dict.fromkeys([*extra_hotwords, *(t.canonical for t in terms)]))
    rest = [w for w in everything if w not in hot]
    prompt_terms, dropped = _fit(
        rest, lambda ws: " " + ", ".join(ws) + ".", count_tokens, prompt_budget
    )
    return Bias(
        hotwords=" ".join(hot) or None,
        initial_prompt=(", ".join(prompt_terms) + ".") if prompt_terms else None,
        kept=hot + prompt_terms,
        dropped=dropped,
    )


class HotwordChoice:
    """Chooses each window's hotwords from what a first pass heard, and remembers them.

    Offering every glossary term makes Whisper write terms nobody said; offering none
    loses the terms that were. A term is offered for a window when the first pass wrote
    it, one of its variants, or something that sounds like it: Latin text through
    ``glossary.offering`` (built for recall: letter names, number words, no first-sound
    rule), Hangul through the sound-alike matcher at a looser threshold than correction's.
    The biased decode still has to hear the term. The request's own hotwords are always
    offered.

    A small model does not hear every term in a first pass ("the disk" for Redis), so a
    second quick pass, the survey, is offered every term that fits the budget, closest to
    the first pass first (``survey()``); a term it writes verbatim is offered too. Both
    hearings stay in the run record, and post-correction's ``hearings`` stage
    (``glossary.hearings``) reconciles the decode with them; ``alternatives`` proposes the
    spellings the engine checks against each segment's audio first.
    """

    def __init__(
        self,
        *,
        terms: Sequence[TermSpec],
        extra_hotwords: Sequence[str] = (),
        count_tokens: Callable[[str], int],
        budget: int = HOTWORDS_BUDGET_TOKENS,
    ) -> None:
        self.terms = list(terms)
        self.extra = list(extra_hotwords)
        self.count_tokens = count_tokens
        self.budget = budget
        # Terms marked hotword: false stay in the prompt and are never offered.
        self.hot = [t for t in self.terms if t.hotword]
        self.matcher = SoundAlikeMatcher(self.hot, threshold=CANDIDATE_THRESHOLD)
        self.offer = TermOffer(self.hot)
        self.reconciler = Reconciler(self.terms)

    def survey(self, heard: str) -> str | None:
        """Hotwords for the survey pass over a window whose first pass heard ``heard``:
        the request's own, the terms it heard, then every other term, closest to what it
        heard first, as many as fit (a glossary larger than the budget is surveyed where
        it is likeliest)."""
        likely = self.likely(heard)
        close = self.offer.closeness(heard)
        rest = sorted(
            (t.canonical for t in self.hot if t.canonical not in likely),
            key=lambda canonical: -close.get(canonical, 0.0),
        )
        wanted = list(dict.fromkeys([*self.extra, *likely, *rest]))
        hot, _ = _fit(wanted, lambda ws: " " + " ".join(ws), self.count_tokens, self.budget)
        return " ".join(hot) or None

    def likely(self, heard: str, surveyed: str | None = None) -> list[str]:
        """Glossary terms that the text says, spells as a variant, or sounds like, then
        those the survey (``surveyed``) wrote."""
        lowered = heard.casefold()
        found = [
            t.canonical
            for t in self.hot
            if any(
                _said_in(spelling.casefold(), lowered) for spelling in (t.canonical, *t.variants)
            )
        ]
        found += self.offer(heard)
        # Latin text is read by the offering search above, which lets a span explain one
        # term; the sound-alike matcher reads what it cannot, Hangul.
        close = [m for m in self.matcher.matches(heard) if _HANGUL.search(m.heard)]
        found += [m.term for m in sorted(close, key=lambda m: -m.score)]
        if surveyed:
            found += [t for t in self.survey_wrote(heard, surveyed) if t not in found]
        return list(dict.fromkeys(found))

    def survey_wrote(self, heard: str, surveyed: str) -> list[str]:
        """The terms the survey wrote verbatim where the first pass (``heard``) heard
        something at least a little like them (``SURVEY_CLOSENESS``)."""
        written = apply_glossary(surveyed, self.terms)
        close = self.offer.closeness(heard)
        return [
            t.canonical
            for t in self.hot
            if term_occurrences(written, t.canonical)
            and close.get(t.canonical, 0.0) >= SURVEY_CLOSENESS
        ]

    def prompt(self) -> str | None:
        """The initial prompt beside per-window hotwords: only the terms the operator keeps
        out of hotwords (``hotword: false``). The others are offered where a first pass
        heard them; listing them all in the prompt as well invites terms nobody said."""
        context = [t.canonical for t in self.terms if not t.hotword]
        kept, _ = _fit(
            context, lambda ws: " " + ", ".join(ws) + ".", self.count_tokens, PROMPT_BUDGET_TOKENS
        )
        return (", ".join(kept) + ".") if kept else None

    def __call__(self, heard: str, surveyed: str | None = None) -> str | None:
        """The hotwords to offer after hearing ``heard`` and the survey (None: none)."""
        wanted = list(dict.fromkeys([*self.extra, *self.likely(heard, surveyed)]))
        hot, _ = _fit(wanted, lambda ws: " " + " ".join(ws), self.count_tokens, self.budget)
        return " ".join(hot) or None

    def alternatives(
        self, texts: Sequence[str], *, first_pass: str, survey: str | None
    ) -> list[tuple[str, list[Edit]]]:
        """Per segment of a decoded window: its text as the glossary stage spells it, and
        the term spellings to check against its audio (``glossary.hearings.listened``):
        what the hearings propose (``Reconciler.proposals``, over the window's text; one
        that would cross two segments is left out), then every span that sounds even a
        little like a term the segment lacks (the offering matcher's looser threshold),
        most alike first. The engine checks the first MAX_CHECKS_PER_SEGMENT."""
        spelled = [apply_glossary(text, self.terms) for text in texts]
        bounds, cursor = [], 0
        for text in spelled:
            bounds.append((cursor, cursor + len(text)))
            cursor += len(text)
        reconciled = self.reconciler.proposals(
            "".join(spelled), first_pass=first_pass, survey=survey
        )
        proposed = []
        for text, (low, high) in zip(spelled, bounds, strict=True):
            edits = [
                dataclasses.replace(e, start=e.start - low, end=e.end - low)
                for e in reconciled
                if low <= e.start and e.end <= high
            ]
            edits += [
                Edit(m.start, m.end, m.term, m.term, "sound")
                for m in self.matcher.candidates(text)
                if not term_occurrences(text, m.term)
                # a term written in the span stays, unless the span spells the new one
                and (not self.reconciler.terms_in(m.heard) or m.score == 1.0)
            ]
            unique: dict[tuple[int, int, str], Edit] = {}
            for edit in edits:  # the first proposal of a spelling at a place stands
                unique.setdefault((edit.start, edit.end, edit.text), edit)
            proposed.append((text, list(unique.values())))
        return proposed


_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _said_in(spelling: str, text: str) -> bool:
    """Whether ``spelling`` stands in ``text`` as whole words."""
    return re.search(rf"(?<!\w){re.escape(spelling)}(?!\w)", text) is not None


# --- post-processing --------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    changes: list[dict] = field(default_factory=list)


def _run_stage(stage: Stage, segments: list[dict], fix: Callable[[int, dict], str]) -> None:
    for index, segment in enumerate(segments):
        before = segment["text"]
        after = fix(index, segment)
        if after != before:
            stage.changes.append(
                {
                    "segment": segment["id"],
                    "before": before.strip(),
                    "after": after.strip(),
                    "diff": word_diff(before, after),
                }
            )
            segment["text"] = after


# Flags that say a segment was invented, not heard: such a segment is dropped from the
# transcript on both lanes (kept, with its flags, under "suppressed_segments").
HALLUCINATION_FLAGS = frozenset({"known_hallucination", "repetition", "outside_speech"})


# Operators' variants first (they win), then terms the window's other hearings agree were
# said (batch windows only: see glossary.hearings), then spans that sound like a term,
# then rules.
LOCAL_STAGES = {
    "none": (),
    "glossary": ("glossary", "hearings", "soundalike"),
    "rules": ("glossary", "hearings", "soundalike", "rules"),
}


@dataclass(frozen=True)
class Review:
    """How a segment is flagged and corrected, the same on the batch and the live lane."""

    mode: str = "none"
    terms: Sequence[TermSpec] = ()
    rules: Sequence[RuleSpec] = ()
    phrases: Sequence[str] = ()

    @cached_property
    def _hallucination(self) -> Callable[[str], str | None]:
        return hallucination_matcher(self.phrases)

    @cached_property
    def _soundalike(self) -> SoundAlikeMatcher:
        return SoundAlikeMatcher(self.terms)

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(self.terms)

    @property
    def local_stages(self) -> tuple[str, ...]:
        """The correction stages that run here, in order (the LLM's comes after them)."""
        return LOCAL_STAGES.get(self.mode, LOCAL_STAGES["rules"])

    def flags(self, segment: dict, *, speech: Sequence[tuple[float, float]] | None) -> list[str]:
        """The segment's own flags with every check's (``speech`` None: VAD was off)."""
        found = segment_flags(segment, speech=speech, hallucination=self._hallucination)
        return sorted(set(segment.get("flags", [])) | set(found))

    def correct(self, stage: str, text: str) -> str:
        """Correct one segment's text; ``hearings`` needs its window (see
        ``_run_hearings_stage``) and leaves a lone segment as it is."""
        if stage == "hearings":
            return text
        if stage == "glossary":
            return apply_glossary(text, self.terms)
        if stage == "soundalike":
            return self._soundalike.apply(text)
        return apply_rules(text, self.rules)


def segment_review(
    segment: dict, *, review: Review, speech: Sequence[tuple[float, float]] | None
) -> dict:
    """Flag and correct one segment of a result json, keeping its raw text beside it.

    A segment flagged as a hallucination is not corrected: it is not part of the
    transcript (see ``HALLUCINATION_FLAGS``).
    """
    reviewed = {**segment, "raw_text": segment.get("raw_text", segment["text"])}
    reviewed["flags"] = review.flags(segment, speech=speech)
    for word in reviewed.get("words") or []:
        word["flags"] = word_flags(word)
    if not is_hallucination(reviewed):
        for stage in review.local_stages:
            reviewed["text"] = review.correct(stage, reviewed["text"])
    return reviewed


def is_hallucination(segment: dict) -> bool:
    return bool(HALLUCINATION_FLAGS & set(segment.get("flags", [])))


def _run_hearings_stage(
    stage: Stage, segments: list[dict], hearings: Sequence[dict], reconciler: Reconciler
) -> None:
    """Reconcile each window's segments with the window's hearings (``glossary.hearings``).

    A window the engine checked against its audio (``checked``) takes the audio's
    verdicts (``listened``) on segments whose text is still the one that was checked, and
    nothing else. Otherwise a window's segments are read as one text for the rules; an
    edit that would cross two segments is not made.
    """
    for hearing in hearings:
        members = _members(hearing, segments)
        if not members:
            continue
        if "checked" in hearing:  # the audio was asked: its verdicts, nothing else
            for check in hearing["checked"]:
                for segment in members:
                    if (segment["start"], segment["end"], segment["text"]) == (
                        check["start"],
                        check["end"],
                        check["text"],
                    ):
                        edits = listened(check["alternatives"])
                        fix = functools.partial(_edited, edits=edits, offset=0)
                        _run_stage(stage, [segment], fix)
            continue
        bounds, cursor = [], 0
        for segment in members:
            bounds.append((cursor, cursor + len(segment["text"])))
            cursor += len(segment["text"])
        edits = reconciler.edits(
            "".join(s["text"] for s in members),
            first_pass=hearing.get("first_pass") or "",
            survey=hearing.get("survey"),
        )
        for segment, (low, high) in zip(members, bounds, strict=True):
            mine = [e for e in edits if low <= e.start and e.end <= high]
            if not mine:
                continue
            _run_stage(stage, [segment], functools.partial(_edited, edits=mine, offset=low))


def _members(hearing: dict, segments: list[dict]) -> list[dict]:
    """The segments of the window (and speaker) a hearing was made of."""
    return [
        s
        for s in segments
        if hearing["start"] <= s["start"] < hearing["end"]
        and s.get("speaker") == hearing.get("speaker", s.get("speaker"))
    ]


def _edited(index: int, segment: dict, *, edits: Sequence[Edit], offset: int) -> str:
    """The segment's text with ``edits`` (positions ``offset`` characters ahead) made."""
    text = segment["text"]
    for edit in sorted(edits, key=lambda e: -e.start):
        text = text[: edit.start - offset] + edit.text + text[edit.end - offset :]
    return text


def _correct_segment(review: Review, stage: str, index: int, segment: dict) -> str:
    return review.correct(stage, segment["text"])


def post_process(
    result: dict[str, Any],
    *,
    mode: str,
    terms: Sequence[TermSpec],
    rules: Sequence[RuleSpec],
    phrases: Sequence[str],
    llm_settings: llm.LLMConfig | None = None,
    audit: llm.Audit | None = None,
    drop_flagged: bool = False,
    flag_segments: bool = True,
    llm_everything: bool = False,
) -> dict[str, Any]:
    """Flag, drop hallucinations, then correct a result json in stages; keep the raw text
    and every change."""
    result = copy.deepcopy(result)
    review = Review(mode=mode, terms=terms, rules=rules, phrases=phrases)
    vad_on = result.get("run", {}).get("decoding", {}).get("vad", False)
    speech = [(r["start"], r["end"]) for r in result.get("speech", [])] if vad_on else None
    segments: list[dict] = []
    for segment in result["segments"]:
        segment["raw_text"] = segment.get("raw_text", segment["text"])
        if flag_segments:
            segment["flags"] = review.flags(segment, speech=speech)
        for word in segment.get("words") or []:
            word["flags"] = word_flags(word)
        segments.append(segment)
    suppressed = [s for s in segments if is_hallucination(s)]
    segments = [s for s in segments if not is_hallucination(s)]

    stages: list[Stage] = []
    hearings = result.get("run", {}).get("decoding", {}).get("hearings_per_window") or []
    listened_to = {
        id(s) for hearing in hearings if "checked" in hearing for s in _members(hearing, segments)
    }
    for name in review.local_stages:
        stage = Stage(name)
        if name == "hearings":
            if not hearings:
                continue  # text alone, or a live session: one hearing only
            _run_hearings_stage(stage, segments, hearings, review.reconciler)
        elif name == "soundalike" and listened_to:
            # Where the audio judged the sound-alikes (the hearings stage), the spelling
            # score does not overrule it.
            unheard = [s for s in segments if id(s) not in listened_to]
            _run_stage(stage, unheard, functools.partial(_correct_segment, review, name))
        else:
            _run_stage(stage, segments, functools.partial(_correct_segment, review, name))
        stages.append(stage)
    if mode == "llm":
        stage = Stage("llm")
        if llm_settings is None:
            stage.changes = []
            result["llm_error"] = "LLM correction is not configured on this server."
        else:
            canonical = [t.canonical for t in terms]

            def fix(index: int, segment: dict) -> str:
                if not llm_everything and "low_confidence" not in segment.get("flags", []):
                    return segment["text"]
                before = segments[index - 1]["text"] if index > 0 else ""
                after = segments[index + 1]["text"] if index + 1 < len(segments) else ""
                try:
                    answer = llm.correct(
                        segment["text"].strip(),
                        before=before,
                        after=after,
                        language=result.get("language", ""),
                        terms=canonical,
                        config=llm_settings,
                        audit=audit or (lambda n, o, d: None),
                    )
                except llm.EgressRefused as exc:
                    result["llm_error"] = str(exc)
                    return segment["text"]
                segment.setdefault("llm", answer.outcome)
                if answer.text is None:
                    return segment["text"]
                return (" " if segment["text"].startswith(" ") else "") + answer.text

            _run_stage(stage, segments, fix)
        stages.append(stage)

    dropped = len(suppressed)
    result["segments"] = segments
    result["suppressed_segments"] = suppressed
    if drop_flagged:
        kept = [s for s in segments if not s.get("flags")]
        dropped += len(segments) - len(kept)
        result["segments"] = segments = kept
    result["text"] = " ".join(s["text"].strip() for s in segments if s["text"].strip())
    result["post_correction"] = {
        "mode": mode,
        "stages": [asdict(stage) for stage in stages],
        "dropped_segments": dropped,
    }
    return result


def llm_audit(*, owner=None, key_prefix: str = "", job=None) -> llm.Audit:
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
    segment = processed["segments"][0]
    body = {
        "text": segment["text"],
        "raw_text": text,
        "mode": mode,
        "stages": processed["post_correction"]["stages"],
        "flags": segment["flags"],
    }
    if "llm_error" in processed:
        body["llm_error"] = processed["llm_error"]
    return body


# --- jobs -------------------------------------------------------------------------------


def job_glossary(job) -> Glossary | None:
    glossary_id = job.options.get("glossary_id")
    if not glossary_id:
        return None
    return Glossary.objects.for_owner(job.owner).filter(pk=glossary_id).first()


def job_bias(job, *, count_tokens: Callable[[str], int]) -> Bias:
    """The decoder bias of a job: its inline hotwords, then its glossary's terms."""
    hotwords = job.options.get("hotwords") or []
    if isinstance(hotwords, str):
        hotwords = hotwords.split()
    return glossary_bias(
        terms=term_specs(job_glossary(job)), extra_hotwords=hotwords, count_tokens=count_tokens
    )


def job_hotword_choice(job, *, count_tokens: Callable[[str], int]) -> HotwordChoice | None:
    """Per-window hotwords for a job with a glossary; None without one (its own hotwords,
    if any, are then offered to every window)."""
    terms = term_specs(job_glossary(job))
    if not terms:
        return None
    hotwords = job.options.get("hotwords") or []
    if isinstance(hotwords, str):
        hotwords = hotwords.split()
    return HotwordChoice(terms=terms, extra_hotwords=hotwords, count_tokens=count_tokens)


def job_result_post_process(job, result: dict[str, Any], *, bias: Bias) -> dict[str, Any]:
    """Flags, the requested correction stages and the bias used, added to a job's result."""
    glossary = job_glossary(job)
    mode = (job.options.get("post_correction") or {}).get("mode", "none")
    processed = post_process(
        result,
        mode=mode,
        terms=term_specs(glossary),
        rules=rule_specs(glossary),
        phrases=hallucination_phrases(),
        llm_settings=llm_config() if mode == "llm" else None,
        audit=llm_audit(owner=job.owner, job=job),
        drop_flagged=bool(job.options.get("drop_flagged")),
    )
    processed["bias"] = asdict(bias)
    return processed
