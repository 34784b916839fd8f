"""Decoder bias from a glossary: hotwords and an initial prompt, within Whisper's budget.

``glossary_bias`` builds a request's bias; with a glossary, ``HotwordChoice`` chooses each
window's (or live step's) hotwords from what quick passes heard, the engine's
``HotwordSelector``. Why offering only the terms heard: docs/glossary-design.md.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from glossary.hearings import SURVEY_CLOSENESS, Edit, Reconciler
from glossary.metrics import term_occurrences
from glossary.normalize import TermSpec, apply_glossary
from glossary.offering import TermOffer
from glossary.soundalike import DEFAULT_THRESHOLD, SoundAlikeMatcher

# A looser match than correction's: enough to offer a term to the biased decode.
CANDIDATE_THRESHOLD = DEFAULT_THRESHOLD * 0.7

# Whisper's prompt holds at most 223 tokens (max_length // 2 - 1); hotwords and the
# initial prompt share it with the previous window's text, so each gets a part of it.
HOTWORDS_BUDGET_TOKENS = 96
PROMPT_BUDGET_TOKENS = 96


@dataclass(frozen=True)
class Bias:
    """A request's decoder bias: the hotwords each window is offered where none are chosen
    for it, the initial prompt, and which of the wanted words fit and which did not."""

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


def _hotwords(words: list[str]) -> str:
    return " " + " ".join(words)


def _prompt(words: list[str]) -> str:
    return " " + ", ".join(words) + "."


def glossary_bias(
    *,
    terms: Sequence[TermSpec],
    extra_hotwords: Sequence[str] = (),
    count_tokens: Callable[[str], int],
    hotwords_budget: int = HOTWORDS_BUDGET_TOKENS,
    prompt_budget: int = PROMPT_BUDGET_TOKENS,
    hotwords_per_window: bool = False,
) -> Bias:
    """Hotwords and an initial prompt within Whisper's prompt budget, most important first.

    Order: the request's own hotwords, then glossary terms by priority. Whatever fits in
    neither budget is reported as dropped.

    ``hotwords_per_window``: a ``HotwordChoice`` offers each window the terms a first pass
    heard there, so the prompt lists only the terms the operator keeps out of hotwords
    (``hotword: false``); listing every term in the prompt as well invites terms nobody
    said.
    """
    wanted_hot = list(dict.fromkeys([*extra_hotwords, *(t.canonical for t in terms if t.hotword)]))
    hot, _ = _fit(wanted_hot, _hotwords, count_tokens, hotwords_budget)
    everything = list(dict.fromkeys([*extra_hotwords, *(t.canonical for t in terms)]))
    rest = [w for w in everything if w not in hot]
    prompt_terms, dropped = _fit(rest, _prompt, count_tokens, prompt_budget)
    listed = prompt_terms
    if hotwords_per_window:
        context = [t.canonical for t in terms if not t.hotword]
        listed, _ = _fit(context, _prompt, count_tokens, prompt_budget)
    return Bias(
        hotwords=" ".join(hot) or None,
        initial_prompt=(", ".join(listed) + ".") if listed else None,
        kept=hot + prompt_terms,
        dropped=dropped,
    )


class HotwordChoice:
    """Chooses each window's hotwords from what its quick passes heard (the engine's
    ``HotwordSelector``).

    A term is offered for a window when the first pass wrote it, one of its variants, or
    something that sounds like it: Latin text through ``glossary.offering``, Hangul
    through the sound-alike matcher at a looser threshold than correction's; or when the
    survey (offered every term that fits, closest to the first pass first) wrote it where
    the first pass heard something a little like it. The request's own hotwords are always
    offered. ``alternatives`` proposes the spellings the engine checks against each
    segment's audio. Why: docs/glossary-design.md ("Hotwords that fit the audio").
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
        hot, _ = _fit(wanted, _hotwords, self.count_tokens, self.budget)
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

    def __call__(self, heard: str, surveyed: str | None = None) -> str | None:
        """The hotwords to offer after hearing ``heard`` and the survey (None: none)."""
        wanted = list(dict.fromkeys([*self.extra, *self.likely(heard, surveyed)]))
        hot, _ = _fit(wanted, _hotwords, self.count_tokens, self.budget)
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
