"""A template's prompt: a sandboxed Jinja template that operators write.

Operators write prompts in the admin, so rendering one must never run code: Jinja's
``SandboxedEnvironment`` refuses attribute access to internals and calls of unsafe
callables, and the only values a prompt sees are plain strings and numbers. Undefined
names fail the check in the admin rather than rendering as empty text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from transcription.engine import LANGUAGE_NAMES

# What a prompt may use; ``transcript`` it must.
VARIABLES = (
    "transcript",
    "language",
    "language_name",
    "notes_language_name",
    "duration_min",
    "source_name",
    "template_name",
)
_environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class PromptError(ValueError):
    """The prompt cannot be used; ``str()`` says why and what to do."""


def prompt_check(prompt: str) -> None:
    """Raise PromptError unless ``prompt`` parses, uses ``transcript`` and only known names."""
    try:
        parsed = _environment.parse(prompt)
    except TemplateError as exc:
        raise PromptError(f"The prompt is not a valid template: {exc}.") from None
    used = meta.find_undeclared_variables(parsed)
    if "transcript" not in used:
        raise PromptError(
            "The prompt never uses the transcript: put {{ transcript }} where it belongs."
        )
    unknown = sorted(used - set(VARIABLES))
    if unknown:
        raise PromptError(
            f"The prompt uses {', '.join(unknown)}, which it is never given; it may use "
            f"{', '.join(VARIABLES)}."
        )


def prompt_render(prompt: str, values: Mapping[str, Any]) -> str:
    """The prompt with ``values`` filled in (raises PromptError when it cannot render)."""
    try:
        return _environment.from_string(prompt).render(**values)
    except TemplateError as exc:
        raise PromptError(f"The prompt could not be rendered: {exc}.") from None


def language_name(code: str | None) -> str:
    """``ko`` → ``Korean``; another code → ``the language with code xx``; none → the
    transcript's."""
    if not code:
        return "the transcript's language"
    return LANGUAGE_NAMES.get(code, f"the language with code {code}")


def prompt_hash(prompt: str, schema: Mapping[str, Any], system: str) -> str:
    """What made a note, without the transcript: the prompt template, schema and system
    message, hashed."""
    material = json.dumps([prompt, schema, system], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()
