"""Deepgram's query parameters, read into scribe's options: one reading for both protocols
(the live WebSocket, ``deepgram.consumers``, and the pre-recorded POST).

Deepgram's clients always send some parameters scribe does not implement (LiveKit Agents
sends ``filler_words``, ``no_delay``, ``numerals``, ``profanity_filter``, ``mip_opt_out``;
Pipecat others): they are accepted, never an error, and named once in the answer's
``Metadata`` as ignored (``ignored_parameters``). A parameter scribe reads but cannot honour
(a language Whisper does not know, a sample rate the live lane does not take) is a clear
error instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Query = Mapping[str, Sequence[str]]  # parse_qs's shape; a QueryDict's ``lists()`` as a dict

# Read by both protocols (each protocol adds its own, see ``understood``).
COMMON_PARAMETERS = frozenset(
    {
        "model",
        "version",
        "language",
        "punctuate",
        "smart_format",
        "keyterm",
        "keywords",
        "tag",
        "encoding",
        "sample_rate",
        "channels",
        "multichannel",
    }
)
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


class ParameterError(ValueError):
    """A parameter scribe reads but cannot honour; the message says what to send."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class DeepgramQuery:
    """What scribe takes from Deepgram's common parameters."""

    model: str  # as the client named it (any name: the lane's model runs)
    language: str | None  # Whisper's code; None: detect (``multi`` or absent)
    hotwords: tuple[str, ...]  # keyterm and keywords, their ``:intensifier`` stripped
    punctuate: bool  # punctuate or smart_format asked (Whisper punctuates either way)
    smart_format: bool
    tags: tuple[str, ...]
    channels: int
    multichannel: bool
    ignored: tuple[str, ...] = field(default=())  # parameters accepted and not implemented

    def scribe_options(self) -> dict:
        """The job options (``transcription.serializers``' schema) these map to."""
        options: dict = {"language": self.language}
        if self.hotwords:
            options["hotwords"] = list(self.hotwords)
        return options


def first(query: Query, name: str, default: str | None = None) -> str | None:
    values = query.get(name) or ()
    return values[0] if values else default


def flag(query: Query, name: str, default: bool = False) -> bool:
    """A boolean parameter: true/false (also 1/0, yes/no); absent: ``default``."""
    value = first(query, name)
    if value is None or value == "":
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ParameterError(name, f"{name}={value!r} is not a boolean: send true or false.")


def integer(query: Query, name: str, *, low: int, high: int) -> int | None:
    value = first(query, name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ParameterError(name, f"{name}={value!r} is not a whole number.") from None
    if not low <= number <= high:
        raise ParameterError(name, f"{name}={number} is out of range: send {low} to {high}.")
    return number


def language(value: str | None) -> str | None:
    """Deepgram's language to Whisper's: a region tag to its base language (``en-US`` →
    ``en``, ``ko-KR`` → ``ko``, ``zh-Hant`` → ``zh``), ``multi`` (or none) to detection."""
    value = (value or "").strip()
    if value.lower() in ("", "multi", "auto"):
        return None
    return value.replace("_", "-").split("-")[0].lower()


def hotwords(query: Query) -> tuple[str, ...]:
    """``keyterm`` (Nova-3) and ``keywords`` (older models) as hotwords: each value once, an
    ``:intensifier`` suffix (``keywords=vLLM:2``) dropped."""
    words: list[str] = []
    for name in ("keyterm", "keywords"):
        for value in query.get(name) or ():
            word = value.strip()
            head, sep, tail = word.rpartition(":")
            if sep and head and _is_number(tail):
                word = head.strip()
            if word and word not in words:
                words.append(word)
    return tuple(words)


def ignored(query: Query, understood: frozenset[str]) -> tuple[str, ...]:
    """The parameters sent that scribe does not implement, sorted, each once."""
    return tuple(sorted(name for name in query if name not in understood))


def read_common(query: Query, *, understood: frozenset[str]) -> DeepgramQuery:
    """The common parameters; ``understood``: every parameter the protocol reads."""
    channels = integer(query, "channels", low=1, high=32) or 1
    return DeepgramQuery(
        model=first(query, "model") or "",
        language=language(first(query, "language")),
        hotwords=hotwords(query),
        punctuate=flag(query, "punctuate") or flag(query, "smart_format"),
        smart_format=flag(query, "smart_format"),
        tags=tuple(query.get("tag") or ()),
        channels=channels,
        multichannel=flag(query, "multichannel"),
        ignored=ignored(query, understood | COMMON_PARAMETERS),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
