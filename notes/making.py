"""From a transcript to notes or keywords: the prompts, the parts, the merge.

A transcript longer than the context budget (``SCRIBE_LLM_CONTEXT_TOKENS``, less the
prompt and room for the answer) is cut at segment boundaries into parts that fit; each
part's notes are made with the template as if it were the whole, then the parts' notes are
merged by the LLM into one object of the same schema (in rounds, when even they do not fit
at once). Keywords of the parts are simply pooled: their counting is done here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from notes.prompting import language_name, prompt_hash, prompt_render
from notes.structured import Answer, Request

NOTES_SYSTEM = (
    "You write structured notes of a transcript of speech for the people who took part. "
    "Use only what the transcript says; never invent names, dates or decisions. The "
    "transcript comes from speech recognition and may misspell words: keep English "
    "technical terms as written. Answer with JSON only."
)
MERGE_PROMPT = (
    "The notes below were made from {count} consecutive parts of one transcript, in order, "
    "each fitting the same JSON Schema. Merge them into one object that fits it: one "
    "summary of the whole, every decision, action item and open question once, and the "
    "most relevant items where the schema limits their number. Write in {language}.\n\n"
    "{parts}"
)
KEYWORDS_SYSTEM = (
    "You extract the keywords of a transcript of speech: names of people, organisations, "
    "products, technologies, places, dates and other specific things that were talked "
    "about, as written in the transcript (keep English terms in English). Never invent one. "
    "Answer with JSON only."
)
KEYWORDS_PROMPT = (
    "Sort each keyword into one of these categories: {categories}.\n"
    "At most {limit} keywords, the most important first.\n\nTranscript:\n{transcript}"
)
KEYWORDS_LIMIT = 30

# Asks the LLM for one structured answer (notes.structured.structured_answer, bound).
Ask = Callable[[Request], Answer]


@dataclass(frozen=True)
class Line:
    start: float
    end: float
    text: str
    speaker: str | None = None

    def render(self) -> str:
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


@dataclass(frozen=True)
class Transcript:
    """What notes are made from: a stored result's lines and what is known of it."""

    lines: tuple[Line, ...]
    language: str | None
    duration_s: float | None
    source_name: str = ""

    @classmethod
    def from_result(cls, result: dict[str, Any], *, source_name: str = "") -> Transcript:
        lines = tuple(
            Line(float(s["start"]), float(s["end"]), s["text"].strip(), s.get("speaker"))
            for s in result.get("segments", ())
            if (s.get("text") or "").strip()
        )
        return cls(lines, result.get("language"), result.get("duration"), source_name)

    @property
    def text(self) -> str:
        return "\n".join(line.render() for line in self.lines)


@dataclass(frozen=True)
class Budget:
    """Tokens the LLM's context holds, and how many of them the answer needs."""

    context_tokens: int

    @property
    def answer_tokens(self) -> int:
        return max(1024, self.context_tokens // 4)

    def for_transcript(self, prompt_tokens: int) -> int:
        return max(256, self.context_tokens - self.answer_tokens - prompt_tokens)


def estimate_tokens(text: str) -> int:
    """A cautious token count without the model's tokenizer: four ASCII characters a
    token, and a token for every other character (a Hangul syllable is one or two)."""
    ascii_chars = sum(1 for char in text if char.isascii())
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def parts(lines: Sequence[Line], budget_tokens: int) -> list[list[Line]]:
    """``lines`` cut at line boundaries into parts of at most ``budget_tokens`` (a single
    longer line is a part of its own)."""
    result: list[list[Line]] = [[]]
    used = 0
    for line in lines:
        cost = estimate_tokens(line.render()) + 1
        if result[-1] and used + cost > budget_tokens:
            result.append([])
            used = 0
        result[-1].append(line)
        used += cost
    return result


@dataclass(frozen=True)
class Template:
    """A template as the maker needs it (notes.models.Template's fields)."""

    slug: str
    name: str
    language: str
    schema: dict[str, Any]
    prompt: str

    def prompt_hash(self) -> str:
        return prompt_hash(self.prompt, self.schema, NOTES_SYSTEM)


def notes_make(template: Template, transcript: Transcript, *, ask: Ask, budget: Budget) -> Answer:
    """Notes of ``transcript`` by ``template``, in parts when it is too long."""
    notes_language = template.language or transcript.language
    values = {
        "language": transcript.language or "",
        "language_name": language_name(transcript.language),
        "notes_language_name": language_name(notes_language),
        "duration_min": round((transcript.duration_s or 0) / 60, 1),
        "source_name": transcript.source_name,
        "template_name": template.name,
    }
    overhead = estimate_tokens(
        NOTES_SYSTEM + prompt_render(template.prompt, {**values, "transcript": ""})
    )
    pieces = parts(transcript.lines, budget.for_transcript(overhead))
    answers = [
        ask(_notes_request(template, {**values, "transcript": _text(piece)})) for piece in pieces
    ]
    while len(answers) > 1:
        answers = _merged(template, answers, language_name(notes_language), ask, budget)
    return answers[0]


def _notes_request(template: Template, values: dict[str, Any]) -> Request:
    return Request(
        system=NOTES_SYSTEM,
        user=prompt_render(template.prompt, values),
        schema=template.schema,
        name=template.slug.replace("-", "_")[:64],
    )


def _merged(
    template: Template, answers: list[Answer], language: str, ask: Ask, budget: Budget
) -> list[Answer]:
    """One round of merging: neighbouring answers merged in groups that fit the budget."""
    room = budget.for_transcript(estimate_tokens(NOTES_SYSTEM + MERGE_PROMPT))
    groups: list[list[Answer]] = [[]]
    used = 0
    for answer in answers:
        cost = estimate_tokens(json.dumps(answer.data, ensure_ascii=False))
        if len(groups[-1]) > 1 and used + cost > room:
            groups.append([])
            used = 0
        groups[-1].append(answer)
        used += cost
    if len(groups) == len(answers):  # no two fit together: merge them in pairs anyway
        groups = [answers[i : i + 2] for i in range(0, len(answers), 2)]
    merged = []
    for group in groups:
        if len(group) == 1:
            merged.append(group[0])
            continue
        listed = "\n\n".join(
            f"Part {n}:\n{json.dumps(a.data, ensure_ascii=False)}" for n, a in enumerate(group, 1)
        )
        user = MERGE_PROMPT.format(count=len(group), language=language, parts=listed)
        request = Request(NOTES_SYSTEM, user, template.schema, template.slug.replace("-", "_"))
        merged.append(_combined(ask(request), group))
    return merged


def _combined(answer: Answer, parts_answers: Sequence[Answer]) -> Answer:
    """``answer`` with the attempts and usage of the answers it was made from added."""
    for part in parts_answers:
        answer.attempts += part.attempts
        for name, value in part.usage.items():
            answer.usage[name] = answer.usage.get(name, 0) + value
    return answer


def _text(lines: Sequence[Line]) -> str:
    return "\n".join(line.render() for line in lines)


def keywords_schema(categories: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema of the LLM's keywords answer (counting is done here, not by it)."""
    return {
        "type": "object",
        "properties": {
            "keywords": {
                "type": "array",
                "maxItems": KEYWORDS_LIMIT,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "minLength": 1, "maxLength": 100},
                        "category": {"type": "string", "enum": list(categories)},
                    },
                    "required": ["text", "category"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["keywords"],
        "additionalProperties": False,
    }


def keywords_prompt_hash(categories: Sequence[str]) -> str:
    return prompt_hash(KEYWORDS_PROMPT, keywords_schema(categories), KEYWORDS_SYSTEM)


def keywords_make(
    transcript: Transcript,
    *,
    categories: Sequence[str],
    spellings: dict[str, tuple[str, ...]],
    ask: Ask,
    budget: Budget,
    counted: bool = True,
) -> Answer:
    """Keywords of ``transcript``: the LLM names and sorts them (in parts when long), then
    each is spelled as the glossary's term it matches (``spellings``: canonical →
    variants), counted and placed at its first mention. ``data`` is the list; without
    ``counted``, the LLM's own ``[{"text", "category"}]`` (live keywords count them over
    the whole session)."""
    schema = keywords_schema(categories)
    prompt = KEYWORDS_PROMPT.format(
        categories=", ".join(categories), limit=KEYWORDS_LIMIT, transcript=""
    )
    room = budget.for_transcript(estimate_tokens(KEYWORDS_SYSTEM + prompt))
    found: list[dict[str, str]] = []
    total: Answer | None = None
    for piece in parts(transcript.lines, room):
        user = KEYWORDS_PROMPT.format(
            categories=", ".join(categories), limit=KEYWORDS_LIMIT, transcript=_text(piece)
        )
        answer = ask(Request(KEYWORDS_SYSTEM, user, schema, "keywords"))
        found += answer.data["keywords"]
        total = answer if total is None else _combined(total, [answer])
    assert total is not None  # parts() gives at least one part
    total.data = keywords_counted(found, transcript.lines, spellings) if counted else found
    return total


def keywords_counted(
    found: Sequence[dict[str, str]],
    lines: Sequence[Line],
    spellings: dict[str, tuple[str, ...]],
) -> list[dict[str, Any]]:
    """``[{"text", "category", "count", "first_seen"}]``: each keyword once (the first
    category named for it), in the glossary's spelling where it is a term, with how often
    and when (seconds, the first line's start) it was said; the most said first."""
    forms_of = {c.casefold(): (c, (c, *v)) for c, v in spellings.items()}
    for canonical, variants in spellings.items():
        for variant in variants:
            forms_of.setdefault(variant.casefold(), (canonical, (canonical, *variants)))
    keywords: dict[str, dict[str, Any]] = {}
    for item in found:
        text = " ".join(item["text"].split())
        if not text:
            continue
        spelled, forms = forms_of.get(text.casefold(), (text, (text,)))
        if spelled.casefold() in keywords:
            continue
        count, first = 0, None
        for line in lines:
            said = line.text.casefold()
            hits = sum(said.count(form) for form in {f.casefold() for f in forms if f})
            if hits and first is None:
                first = round(line.start, 2)
            count += hits
        keywords[spelled.casefold()] = {
            "text": spelled,
            "category": item["category"],
            "count": count,
            "first_seen": first,
        }
    return sorted(
        keywords.values(),
        key=lambda k: (-k["count"], k["first_seen"] is None, k["first_seen"] or 0.0),
    )
