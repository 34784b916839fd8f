"""Glossary terms as CSV: ``canonical,variants,hotword,priority`` with variants split by |.

An export also leads with a ``glossary`` column, so terms of several glossaries stay apart;
an import ignores it: the rows go to the glossary the operator chose.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from glossary.models import Glossary, Term
from glossary.serializers import TermSerializer

HEADER = ["canonical", "variants", "hotword", "priority"]
EXPORT_HEADER = ["glossary", *HEADER]
TRUE = {"1", "true", "yes", "y", "on"}


def terms_to_csv(terms: Iterable[Term]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_HEADER)
    for term in terms:
        writer.writerow(
            [
                str(term.glossary),
                term.canonical,
                "|".join(term.variants),
                str(term.hotword).lower(),
                term.priority,
            ]
        )
    return out.getvalue()


def terms_from_csv(text: str) -> list[dict]:
    """Parse CSV text into term dicts, each one the API would take (``TermSerializer``);
    raise ValueError naming the bad line."""
    # newline="": the csv module reads the line ends itself, a "\r" within a field too.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    terms = []
    try:
        if not reader.fieldnames or "canonical" not in reader.fieldnames:
            raise ValueError(f"The first line must name the columns: {','.join(HEADER)}.")
        for line, row in enumerate(reader, start=2):
            terms.append(_term(line, row))
    except csv.Error as exc:  # a field over csv.field_size_limit()
        # line_num counts the lines read before the one that failed.
        raise ValueError(f"Line {reader.line_num + 1}: not CSV ({exc}).") from None
    return terms


def _term(line: int, row: dict) -> dict:
    canonical = (row.get("canonical") or "").strip()
    if not canonical:
        raise ValueError(f"Line {line}: canonical is empty.")
    try:
        priority = int((row.get("priority") or "0").strip() or 0)
    except ValueError:
        raise ValueError(f"Line {line}: priority must be a whole number.") from None
    variants = [v.strip() for v in (row.get("variants") or "").split("|") if v.strip()]
    hotword = (row.get("hotword") or "true").strip().lower() in TRUE
    term = {"canonical": canonical, "variants": variants, "hotword": hotword, "priority": priority}
    checked = TermSerializer(data=term)
    if not checked.is_valid():
        raise ValueError(f"Line {line}: {_first_error(checked.errors)}")
    return term


def _first_error(errors: Any) -> str:
    """The first of DRF's errors on one line: ``{"variants": {2: ["Ensure …"]}}`` reads
    "variants 3: Ensure …"."""
    where: list[str] = []
    while isinstance(errors, dict):
        key, errors = next(iter(errors.items()))
        where.append(str(key + 1) if isinstance(key, int) else str(key))
    return f"{' '.join(where)}: {errors[0]}"


def import_terms(glossary: Glossary, text: str) -> int:
    """Add or update terms from CSV; returns how many rows were applied."""
    rows = terms_from_csv(text)
    for row in rows:
        Term.objects.update_or_create(
            glossary=glossary,
            canonical=row["canonical"],
            defaults={k: v for k, v in row.items() if k != "canonical"},
        )
    return len(rows)
