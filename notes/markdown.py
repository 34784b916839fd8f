"""``?format=md``: a job's notes, keywords and transcript as one Markdown document.

Notes are rendered from their data whatever the template's schema: a string is a
paragraph, a list a bulleted list (an object in it one line of its fields), an object a
list of its fields, each key a heading in words ("action_items" → "Action items").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from notes.models import Note, Template


def job_markdown(*, title: str, result: dict[str, Any], notes: Iterable[Note]) -> str:
    language = result.get("language") or "unknown language"
    lines = [f"# {_inline(title)}", "", f"*{language}, {_clock(result.get('duration') or 0)}*", ""]
    names = dict(Template.objects.values_list("slug", "name"))
    for note in notes:
        if note.kind == Note.Kind.KEYWORDS:
            lines += ["## Keywords", "", *_keywords(note), ""]
        else:
            heading = names.get(note.template_slug, note.template_slug)
            lines += [f"## {_inline(heading)}", "", *_note(note), ""]
    lines += ["## Transcript", ""]
    for segment in result.get("segments", ()):
        text = (segment.get("text") or "").strip()
        if text:
            speaker = f"**{segment['speaker']}:** " if segment.get("speaker") else ""
            lines.append(f"[{_clock(segment.get('start') or 0)}] {speaker}{_inline(text)}  ")
    return "\n".join(lines).rstrip() + "\n"


def _note(note: Note) -> list[str]:
    if note.status == Note.Status.PENDING:
        return ["*Being made…*"]
    if note.status == Note.Status.FAILED:
        return [f"*Not made: {_inline(note.error_message)}*"]
    lines = [f"*{note.model}, template version {note.template_version}*", ""]
    data = note.data
    if not isinstance(data, dict):
        return [*lines, *_value(data)]
    for key, value in data.items():
        lines += [f"### {_words(key)}", "", *_value(value), ""]
    return lines


def _keywords(note: Note) -> list[str]:
    if note.status != Note.Status.COMPLETED:
        return _note(note)
    return [
        f"- **{_inline(k['text'])}** ({k['category']}), said {k['count']}×"
        + (f", first at {_clock(k['first_seen'])}" if k.get("first_seen") is not None else "")
        for k in note.data or ()
    ] or ["*None found.*"]


def _value(value: Any) -> list[str]:
    if isinstance(value, list):
        return [f"- {_item(item)}" for item in value] or ["*None.*"]
    if isinstance(value, dict):
        return [f"- **{_words(k)}:** {_item(v)}" for k, v in value.items()]
    return [_item(value)]


def _item(value: Any) -> str:
    if isinstance(value, dict):
        first, *rest = list(value.items()) or [("", "")]
        shown = [f"{_item(first[1])}"] + [
            f"{_words(k).lower()}: {_item(v)}" for k, v in rest if v not in (None, "", [])
        ]
        return " — ".join(shown[:1] + ([", ".join(shown[1:])] if shown[1:] else []))
    if isinstance(value, list):
        return ", ".join(_item(v) for v in value)
    if value is None:
        return "—"
    return _inline(str(value))


def _words(key: str) -> str:
    return key.replace("_", " ").strip().capitalize() or key


def _inline(text: str) -> str:
    """Text on one line, with Markdown's markup characters taken literally."""
    flat = " ".join(text.split())
    for char in "\\`*_[]<>#|":
        flat = flat.replace(char, "\\" + char)
    return flat


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
