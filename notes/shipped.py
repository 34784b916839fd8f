"""The templates and keyword categories scribe ships (a data migration installs them;
operators edit or add to them in the admin)."""

from __future__ import annotations

from typing import Any

_ACTION_ITEM = {
    "type": "object",
    "properties": {
        "task": {"type": "string", "minLength": 1},
        "owner": {"type": ["string", "null"]},
        "due": {"type": ["string", "null"]},
    },
    "required": ["task", "owner", "due"],
    "additionalProperties": False,
}
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_TAGS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 40},
    "minItems": 1,
    "maxItems": 5,
}

MEETING_NOTES: dict[str, Any] = {
    "slug": "meeting_notes",
    "name": "Meeting notes",
    "description": "Summary, decisions, action items with owner and due date, open "
    "questions and tags.",
    "language": "",
    "schema": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1},
            "decisions": _STRINGS,
            "action_items": {"type": "array", "items": _ACTION_ITEM},
            "open_questions": _STRINGS,
            "tags": _TAGS,
        },
        "required": ["summary", "decisions", "action_items", "open_questions", "tags"],
        "additionalProperties": False,
    },
    "prompt": """Write notes of this meeting in {{ notes_language_name }}.
- summary: what the meeting was about and what came of it, in two to five sentences.
- decisions: every decision that was made, one sentence each (an empty list if none was).
- action_items: every task someone agreed to do: the task; its owner, the name as it
  was said, or null when nobody was named; its due date or time as it was said, or null
  when none was.
- open_questions: questions that were raised and left unanswered.
- tags: one to five short topic tags.
Keep English technical terms (product names, commands, acronyms) exactly as the
transcript writes them.

Transcript ({{ duration_min }} minutes):
{{ transcript }}""",
}

CALL_SUMMARY: dict[str, Any] = {
    "slug": "call_summary",
    "name": "Call summary",
    "description": "A phone or video call: why it was made, what came of it, follow-ups, "
    "sentiment and tags.",
    "language": "",
    "schema": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1},
            "reason": {"type": "string"},
            "outcome": {"type": "string"},
            "follow_ups": {"type": "array", "items": _ACTION_ITEM},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "tags": _TAGS,
        },
        "required": ["summary", "reason", "outcome", "follow_ups", "sentiment", "tags"],
        "additionalProperties": False,
    },
    "prompt": """Summarise this call in {{ notes_language_name }}.
- summary: the call in two to four sentences.
- reason: why the call was made, in one sentence.
- outcome: what was agreed or resolved, in one sentence (say so if nothing was).
- follow_ups: every task someone agreed to do after the call: the task; its owner, the
  name as it was said, or null; its due date or time as it was said, or null.
- sentiment: how the caller's side felt at the end: positive, neutral or negative.
- tags: one to five short topic tags.
Keep English technical terms exactly as the transcript writes them.

Transcript ({{ duration_min }} minutes):
{{ transcript }}""",
}

TEMPLATES = (MEETING_NOTES, CALL_SUMMARY)

CATEGORIES = (
    ("person", "a person, by name or role"),
    ("organisation", "a company, team, agency or other organisation"),
    ("product", "a product, service or project"),
    ("technology", "a technology, tool, protocol, language or standard"),
    ("place", "a place"),
    ("date", "a date, time or deadline"),
    ("topic", "any other subject talked about"),
)


def shipped_install(template_model: Any, category_model: Any) -> None:
    """Add the shipped templates and categories that are missing (the data migration's
    work, given its historical models); an operator's edits are kept."""
    for template in TEMPLATES:
        template_model.objects.get_or_create(slug=template["slug"], defaults=template)
    for order, (name, description) in enumerate(CATEGORIES):
        category_model.objects.get_or_create(
            name=name, defaults={"description": description, "order": order}
        )
