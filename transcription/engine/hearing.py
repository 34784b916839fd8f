"""What the engine heard of a window besides its decode: the contract with the glossary.

A window of a job with a glossary is heard more than once (``decode_policy``): a quick
unbiased first pass, a quick survey offered the glossary's terms, the biased decode, and
the audio asked about each term spelling the glossary proposes. The engine records that
as a ``Hearing`` per window in the run record (``decoding.hearings_per_window``, JSON);
the glossary's post-correction reads it back with ``Hearing.from_dict``. The engine never
imports the glossary: a glossary takes part through a ``HotwordSelector``. Why it works
this way: docs/glossary-design.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol


class Alternative(Protocol):
    """A span of a segment's text and the term spelling that might stand there."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def text(self) -> str: ...  # what would replace the span
    @property
    def term(self) -> str: ...  # the term it puts in (offered to the model as a hotword)
    @property
    def reason(self) -> str: ...


class HotwordSelector(Protocol):
    """Chooses each window's hotwords from what quick passes over it heard."""

    def survey(self, heard: str) -> str | None:
        """Hotwords for a second quick pass over a window whose first pass heard
        ``heard`` (every term, say); None: no second pass."""

    def __call__(self, heard: str, surveyed: str | None = None) -> str | None:
        """The window's hotwords, from the first pass's text and the survey's (None)."""

    def alternatives(
        self, texts: Sequence[str], *, first_pass: str, survey: str | None
    ) -> Sequence[tuple[str, Sequence[Alternative]]]:
        """Per segment text of a decoded window: the text as the glossary spells it and
        the term spellings to check against the segment's audio (spans of that text)."""


@dataclass(frozen=True)
class CheckedAlternative:
    """A term spelling scored against a segment's audio."""

    start: int  # the span of the segment's (glossary-spelled) text it replaces
    end: int
    heard: str  # the span's text
    text: str  # what would replace it
    term: str
    reason: str  # why it was proposed ("sound", "survey", "first_pass", "near", ...)
    gain: float  # nats: how much likelier the model finds the text with it than without

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckedAlternative:
        return cls(**{field.name: data[field.name] for field in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckedSegment:
    """A decoded segment whose alternatives were scored against its audio."""

    start: float
    end: float
    text: str  # the segment's text as the glossary spelled it when it proposed them
    alternatives: tuple[CheckedAlternative, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckedSegment:
        return cls(
            start=data["start"],
            end=data["end"],
            text=data["text"],
            alternatives=tuple(CheckedAlternative.from_dict(a) for a in data["alternatives"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }


@dataclass(frozen=True)
class Hearing:
    """One window's hearings: its span in file seconds, what the quick passes wrote, the
    biased decode where it was replaced, and what the audio was asked.

    ``checked`` is None where the audio was not asked (results stored before the engine
    asked it); an empty tuple means it was asked about nothing. ``speaker`` names the
    channel a window was heard on (one transcript per channel, merged).
    """

    start: float
    end: float
    first_pass: str
    survey: str | None = None
    biased_decode: str | None = None  # set where it lost speech and was decoded again
    checked: tuple[CheckedSegment, ...] | None = None
    speaker: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hearing:
        """Read a hearing as the run record stores it, from any version of scribe."""
        checked = data.get("checked")
        return cls(
            start=data["start"],
            end=data["end"],
            first_pass=data.get("first_pass") or "",
            survey=data.get("survey"),
            biased_decode=data.get("biased_decode"),
            checked=None
            if checked is None
            else tuple(CheckedSegment.from_dict(c) for c in checked),
            speaker=data.get("speaker"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The run record's JSON: optional keys only where they say something."""
        data: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "first_pass": self.first_pass,
            "survey": self.survey,
        }
        if self.biased_decode is not None:
            data["biased_decode"] = self.biased_decode
        if self.checked is not None:
            data["checked"] = [c.to_dict() for c in self.checked]
        if self.speaker is not None:
            data["speaker"] = self.speaker
        return data
