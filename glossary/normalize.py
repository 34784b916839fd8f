"""Glossary variants and ordered rules applied to text. Pure functions.

Korean attaches particles to the word before ("쿠버네티스에서"), so a Hangul variant matches
without a word boundary after it; a Latin-script variant must stand as a whole word
("api" in "rapid" is not the API).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TermSpec:
    canonical: str
    variants: tuple[str, ...] = ()
    hotword: bool = True


@dataclass(frozen=True)
class RuleSpec:
    kind: str  # literal | regex | acronym
    pattern: str
    replacement: str = ""
    case_sensitive: bool = False


def _is_wordlike(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _variant_regex(variant: str) -> str:
    parts = [re.escape(p) for p in variant.split()]
    body = r"\s*".join(parts)  # "패스트 API" also matches "패스트API"
    before = r"(?<![A-Za-z0-9_])" if _is_wordlike(variant[0]) else ""
    after = r"(?![A-Za-z0-9_])" if _is_wordlike(variant[-1]) else ""
    return before + body + after


def glossary_pattern(terms: Sequence[TermSpec]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """One regex over every variant (and every other casing of each canonical spelling)."""
    lookup: dict[str, str] = {}  # spacing- and case-free form -> canonical
    forms: dict[str, str] = {}  # the same key -> the form as written
    for term in terms:
        for form in (*term.variants, term.canonical):
            form = form.strip()
            if form and _key(form) not in lookup:
                lookup[_key(form)] = term.canonical
                forms[_key(form)] = form
    if not lookup:
        return None
    # Longest first, so "패스트 API" wins over "API".
    ordered = sorted(forms.values(), key=lambda f: len(_key(f)), reverse=True)
    return re.compile("|".join(_variant_regex(f) for f in ordered), re.IGNORECASE), lookup


def _key(form: str) -> str:
    return re.sub(r"\s+", "", form).casefold()


def apply_glossary(text: str, terms: Sequence[TermSpec]) -> str:
    """Replace known variants and miscased spellings by the canonical term."""
    compiled = glossary_pattern(terms)
    if compiled is None:
        return text
    pattern, lookup = compiled
    return pattern.sub(lambda m: lookup.get(_key(m.group(0)), m.group(0)), text)


def compile_rule(rule: RuleSpec):
    """Return text -> text for one rule; raises re.error for a bad regex or a replacement
    that names a group the regex lacks (here, not on the first text it matches)."""
    flags = 0 if rule.case_sensitive else re.IGNORECASE
    if rule.kind == "regex":
        pattern = re.compile(rule.pattern, flags)
        _check_replacement(pattern, rule.replacement)
        return lambda text: pattern.sub(rule.replacement, text)
    if rule.kind == "acronym":
        target = rule.replacement or rule.pattern
        pattern = re.compile(_variant_regex(rule.pattern), re.IGNORECASE)
        return lambda text: pattern.sub(lambda _m: target, text)
    pattern = re.compile(re.escape(rule.pattern), flags)
    return lambda text: pattern.sub(lambda _m: rule.replacement, text)


def _check_replacement(pattern: re.Pattern[str], replacement: str) -> None:
    """Raise re.error where ``replacement`` is no template for ``pattern`` ("\\2" with one
    group, "\\q", "\\g<name>" of no group): ``sub`` reads the template before it looks for
    a match, so an empty text is enough."""
    try:
        pattern.sub(replacement, "")
    except IndexError as exc:  # an unknown group name, on Python 3.11
        raise re.error(f"bad replacement: {exc}") from None


def apply_rules(text: str, rules: Sequence[RuleSpec]) -> str:
    """Apply ``rules`` in order. A rule that cannot be compiled (stored before its check
    existed, or written to the database directly) is skipped with a warning: one bad rule
    must not fail every job of its glossary."""
    for rule in rules:
        try:
            compiled = compile_rule(rule)
        except re.error as exc:
            logger.warning("skipping the %s rule %r: %s", rule.kind, rule.pattern, exc)
            continue
        text = compiled(text)
    return text
