"""Review of a transcript's segments: flags, hallucinations set apart, correction stages.

One review for both lanes: a file job's result (``post_process``) and a live final
(``segment_review``) go through the same ``review_segments``. A file job's windows also
bring their hearings (``transcription.engine.hearing``), which the ``hearings`` stage
reconciles the decode with; a live final has none. Stages: docs/glossary-design.md.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from glossary import llm
from glossary.diff import word_diff
from glossary.flags import hallucination_matcher, segment_flags, word_flags
from glossary.hearings import Edit, Reconciler, listened
from glossary.normalize import RuleSpec, TermSpec, apply_glossary, apply_rules
from glossary.soundalike import SoundAlikeMatcher
from scribe.llm import LLMConfig
from transcription.engine.hearing import CheckedSegment, Hearing

MODES = ("none", "glossary", "rules", "llm")

# Flags that say a segment was invented, not heard: such a segment is dropped from the
# transcript on both lanes (kept, with its flags, under "suppressed_segments").
HALLUCINATION_FLAGS = frozenset({"known_hallucination", "repetition", "outside_speech"})

# Operators' variants first (they win), then terms the window's other hearings agree were
# said (file jobs' windows only: see glossary.hearings), then spans that sound like a term,
# then rules.
LOCAL_STAGES = {
    "none": (),
    "glossary": ("glossary", "hearings", "soundalike"),
    "rules": ("glossary", "hearings", "soundalike", "rules"),
}


@dataclass
class Stage:
    name: str
    changes: list[dict] = field(default_factory=list)


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
        """Correct one segment's text in a stage that reads the segment alone (all but
        ``hearings``, which reads its window: ``_run_hearings_stage``)."""
        if stage == "glossary":
            return apply_glossary(text, self.terms)
        if stage == "soundalike":
            return self._soundalike.apply(text)
        return apply_rules(text, self.rules)


@dataclass(frozen=True)
class Reviewed:
    segments: list[dict]  # flagged and corrected, in order
    suppressed: list[dict]  # flagged as hallucinations, not corrected
    stages: list[Stage]  # what each correction stage changed


def is_hallucination(segment: dict) -> bool:
    return bool(HALLUCINATION_FLAGS & set(segment.get("flags", [])))


def review_segments(
    segments: list[dict],
    *,
    review: Review,
    speech: Sequence[tuple[float, float]] | None,
    hearings: Sequence[Hearing] = (),
) -> Reviewed:
    """Flag each segment (in place), set hallucinations apart, and correct the others in
    the review's local stages, keeping each segment's raw text beside it.

    ``speech``: the VAD's speech regions (None: VAD was off); ``hearings``: the windows'
    hearings of a file job (none for a live final or text).
    """
    for segment in segments:
        segment["raw_text"] = segment.get("raw_text", segment["text"])
        segment["flags"] = review.flags(segment, speech=speech)
        for word in segment.get("words") or []:
            word["flags"] = word_flags(word)
    suppressed = [s for s in segments if is_hallucination(s)]
    kept = [s for s in segments if not is_hallucination(s)]
    return Reviewed(kept, suppressed, _correct(kept, review, hearings))


def segment_review(
    segment: dict, *, review: Review, speech: Sequence[tuple[float, float]] | None
) -> dict:
    """Flag and correct one segment (a live final) as a file job's segments are; a
    hallucination is returned flagged and uncorrected (see ``HALLUCINATION_FLAGS``)."""
    reviewed = review_segments([copy.deepcopy(segment)], review=review, speech=speech)
    return (reviewed.segments or reviewed.suppressed)[0]


def _correct(segments: list[dict], review: Review, hearings: Sequence[Hearing]) -> list[Stage]:
    """Run the review's local stages over ``segments``; return what each changed."""
    listened_to = {
        id(s) for hearing in hearings if hearing.checked is not None
        for s in _members(hearing, segments)
    }  # fmt: skip
    stages: list[Stage] = []
    for name in review.local_stages:
        stage = Stage(name)
        fix = functools.partial(_correct_segment, review, name)
        if name == "hearings":
            if not hearings:
                continue  # text alone, or a live final: one hearing only
            _run_hearings_stage(stage, segments, hearings, review.reconciler)
        elif name == "soundalike" and listened_to:
            # Where the audio judged the sound-alikes (the hearings stage), the spelling
            # score does not overrule it.
            _run_stage(stage, [s for s in segments if id(s) not in listened_to], fix)
        else:
            _run_stage(stage, segments, fix)
        stages.append(stage)
    return stages


def _correct_segment(review: Review, stage: str, index: int, segment: dict) -> str:
    return review.correct(stage, segment["text"])


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


def _run_hearings_stage(
    stage: Stage, segments: list[dict], hearings: Sequence[Hearing], reconciler: Reconciler
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
        if hearing.checked is not None:  # the audio was asked: its verdicts, nothing else
            _take_verdicts(stage, members, hearing.checked)
        else:
            _reconcile(stage, members, hearing, reconciler)


def _take_verdicts(stage: Stage, members: list[dict], checked: Sequence[CheckedSegment]) -> None:
    for check in checked:
        for segment in members:
            if (segment["start"], segment["end"], segment["text"]) == (
                check.start,
                check.end,
                check.text,
            ):
                edits = listened(check.alternatives)
                _run_stage(stage, [segment], functools.partial(_edited, edits=edits, offset=0))


def _reconcile(stage: Stage, members: list[dict], hearing: Hearing, reconciler: Reconciler) -> None:
    bounds, cursor = [], 0
    for segment in members:
        bounds.append((cursor, cursor + len(segment["text"])))
        cursor += len(segment["text"])
    edits = reconciler.edits(
        "".join(s["text"] for s in members), first_pass=hearing.first_pass, survey=hearing.survey
    )
    for segment, (low, high) in zip(members, bounds, strict=True):
        mine = [e for e in edits if low <= e.start and e.end <= high]
        if not mine:
            continue
        _run_stage(stage, [segment], functools.partial(_edited, edits=mine, offset=low))


def _members(hearing: Hearing, segments: list[dict]) -> list[dict]:
    """The segments of the window (and speaker) a hearing was made of."""
    return [
        s
        for s in segments
        if hearing.start <= s["start"] < hearing.end
        and (hearing.speaker is None or s.get("speaker") == hearing.speaker)
    ]


def _edited(index: int, segment: dict, *, edits: Sequence[Edit], offset: int) -> str:
    """The segment's text with ``edits`` (positions ``offset`` characters ahead) made."""
    text = segment["text"]
    for edit in sorted(edits, key=lambda e: -e.start):
        text = text[: edit.start - offset] + edit.text + text[edit.end - offset :]
    return text


def post_process(
    result: dict[str, Any],
    *,
    mode: str,
    terms: Sequence[TermSpec],
    rules: Sequence[RuleSpec],
    phrases: Sequence[str],
    llm_settings: LLMConfig | None = None,
    audit: llm.Audit | None = None,
    drop_flagged: bool = False,
    llm_everything: bool = False,
) -> dict[str, Any]:
    """Review a result json (``review_segments``), then send segments to the LLM where
    ``mode`` is "llm"; keep the raw text and every change."""
    result = copy.deepcopy(result)
    review = Review(mode=mode, terms=terms, rules=rules, phrases=phrases)
    decoding = result.get("run", {}).get("decoding", {})
    vad_on = decoding.get("vad", False)
    speech = [(r["start"], r["end"]) for r in result.get("speech", [])] if vad_on else None
    hearings = [Hearing.from_dict(h) for h in decoding.get("hearings_per_window") or []]
    reviewed = review_segments(result["segments"], review=review, speech=speech, hearings=hearings)
    segments, stages = reviewed.segments, reviewed.stages
    if mode == "llm":
        stages.append(_llm_stage(result, segments, terms, llm_settings, audit, llm_everything))
    dropped = len(reviewed.suppressed)
    result["segments"] = segments
    result["suppressed_segments"] = reviewed.suppressed
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


def _llm_stage(
    result: dict[str, Any],
    segments: list[dict],
    terms: Sequence[TermSpec],
    settings: LLMConfig | None,
    audit: llm.Audit | None,
    everything: bool,
) -> Stage:
    """Send low-confidence segments (``everything``: every one) to the correction model,
    with their neighbours as context; a refused send is noted as ``llm_error``."""
    stage = Stage("llm")
    if settings is None:
        result["llm_error"] = "LLM correction is not configured on this server."
        return stage
    canonical = [t.canonical for t in terms]

    def fix(index: int, segment: dict) -> str:
        if not everything and "low_confidence" not in segment.get("flags", []):
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
                config=settings,
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
    return stage
