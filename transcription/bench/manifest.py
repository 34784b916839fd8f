"""Bench manifests: which audio files, what was said in them and which terms."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """A bench input or tool problem, worded for the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ManifestEntry:
    audio: Path
    reference: str
    language: str | None = None  # None: detect
    terms: tuple[str, ...] | None = None  # the terms said; None: the glossary's in reference


MANIFEST_FIELDS = ("audio", "reference", "language", "terms")


def _entry(raw: dict[str, Any], base: Path) -> ManifestEntry:
    audio, reference = raw["audio"], raw["reference"]
    if not isinstance(audio, str) or not audio.strip():
        raise ValueError("audio must be a path")
    if not isinstance(reference, str):
        raise ValueError("reference must be text")
    path = (base / audio).resolve()
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    terms = raw.get("terms")
    if terms is not None and (
        not isinstance(terms, list | tuple) or not all(isinstance(t, str) for t in terms)
    ):
        raise ValueError("terms must be a list of strings")
    return ManifestEntry(
        audio=path,
        reference=reference,
        language=raw.get("language") or None,
        terms=tuple(t.strip() for t in terms if t.strip()) if terms is not None else None,
    )


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchError(
                f'{path}:{number}: not JSON ({exc}); need {{"audio", "reference"}}'
            ) from None
        if not isinstance(row, dict):
            raise BenchError(f'{path}:{number}: need a {{"audio", "reference"}} object')
        rows.append((number, row))
    return rows


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"audio", "reference"} - set(reader.fieldnames or ())
        if missing:
            raise BenchError(
                f"{path}:1: the header needs the columns audio and reference "
                f"(optional: language, terms); missing {', '.join(sorted(missing))}"
            )
        rows = []
        for row in reader:
            # A csv cell holds the terms separated by ";" ("vLLM; Kubernetes").
            cell = row.get("terms")
            if cell is None or not cell.strip():
                row.pop("terms", None)
            else:
                row["terms"] = [t for t in (s.strip() for s in cell.split(";")) if t]
            rows.append((reader.line_num, row))
    return rows


def manifest_read(*, path: Path) -> list[ManifestEntry]:
    """Read a JSON-lines or (by its .csv suffix) CSV manifest; audio paths are relative
    to the manifest."""
    if not path.is_file():
        raise BenchError(f"{path} does not exist.")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    entries = []
    for number, row in rows:
        try:
            entries.append(_entry(row, path.parent))
        except KeyError as exc:
            raise BenchError(
                f'{path}:{number}: missing {exc}; each entry needs "audio" and "reference"'
                ' (optional: "language", "terms").'
            ) from None
        except ValueError as exc:
            raise BenchError(f"{path}:{number}: {exc}.") from None
    if not entries:
        raise BenchError(f"{path} lists no files.")
    return entries
