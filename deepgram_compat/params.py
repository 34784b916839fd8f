"""Deepgram's query parameters as scribe reads them, for the live and the pre-recorded
``/v1/listen`` alike: pure functions, no Django.

- ``model``: any name (Deepgram's ``nova-3``, ``nova-2``, ``base``, ``whisper-large``, or
  scribe's own) runs on the lane's model: the one its workers hold.
- ``language``: a region tag (``en-US``, ``ko-KR``) is its base language; ``multi`` (and
  no language) is detection.
- ``keyterm`` and ``keywords`` become hotwords; a keyword's ``:intensifier`` is dropped.
- Parameters scribe does not implement are accepted and ignored, never an error: the
  frameworks built on Deepgram's SDK always send some.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Deepgram's parameters that scribe accepts and does not act on (each lane takes its own
# besides; an unknown name is ignored the same way).
IGNORED = frozenset(
    {
        "alternatives",
        "callback_method",
        "custom_intent",
        "custom_intent_mode",
        "custom_topic",
        "custom_topic_mode",
        "detect_entities",
        "diarize_version",
        "dictation",
        "extra",
        "filler_words",
        "intents",
        "language_hint",
        "measurements",
        "mip_opt_out",
        "no_delay",
        "numerals",
        "profanity_filter",
        "redact",
        "replace",
        "search",
        "sentiment",
        "summarize",
        "tag",
        "tier",
        "topics",
        "version",
    }
)
DETECT = ("", "multi", "auto")  # a language that means: detect it
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# A keyword's boost: ``term:2``, ``term:-5.5`` (Deepgram's intensifier).
INTENSIFIER = re.compile(r":-?\d+(?:\.\d+)?$")


def model(requested: str | None, *, lane: str) -> str:
    """The model a request runs on: its lane's, whatever name it gave."""
    del requested  # any name: scribe's lanes each hold one model
    return lane


def language(tag: str | None) -> str | None:
    """The Whisper language code of a BCP-47 tag (``en-US`` → ``en``, ``ko-KR`` → ``ko``);
    None (detect) for ``multi`` or no tag. An unknown code is left for the options' check."""
    base = (tag or "").strip().split("-")[0].split("_")[0].lower()
    return None if base in DETECT else base


def hotwords(keyterms: Iterable[str] = (), keywords: Iterable[str] = ()) -> tuple[str, ...]:
    """``keyterm`` and ``keywords`` values as hotwords, in order, once each; a keyword's
    ``:intensifier`` is dropped (scribe's hotwords have no weights)."""
    terms = [*keyterms, *(INTENSIFIER.sub("", word) for word in keywords)]
    return tuple(dict.fromkeys(term.strip() for term in terms if term.strip()))


def flag(value: str | None, *, default: bool = False) -> bool:
    """A boolean query parameter (``true``/``false``; absent: ``default``); ValueError for
    anything else."""
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean: use true or false.")


def ignored(names: Iterable[str], *, handled: Iterable[str]) -> list[str]:
    """The parameters of a request that scribe accepts without acting on them, sorted:
    every name not in ``handled`` (Deepgram's ``IGNORED`` and unknown ones alike)."""
    return sorted(set(names) - set(handled))
