"""Render a ``Transcript`` as txt, srt, vtt or json."""

from __future__ import annotations

import json
from collections.abc import Callable

from transcription.engine.types import Transcript

CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def timecode(seconds: float, *, separator: str) -> str:
    """Return HH:MM:SS<sep>mmm; hours keep counting past 99 rather than wrapping."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(transcript: Transcript):
    for segment in transcript.segments:
        text = segment.text.strip()
        if text:
            yield segment.start, segment.end, text, segment.speaker


def _said(text: str, speaker: str | None) -> str:
    """``SPEAKER_00: text`` in a diarized transcript (txt and srt have no voice markup)."""
    return f"{speaker}: {text}" if speaker else text


def to_txt(transcript: Transcript, *, words: bool = False) -> str:
    lines = [_said(text, speaker) for _, _, text, speaker in _cues(transcript)]
    return "\n".join(lines) + ("\n" if lines else "")


def to_srt(transcript: Transcript, *, words: bool = False) -> str:
    blocks = [
        f"{n}\n{timecode(start, separator=',')} --> {timecode(end, separator=',')}\n"
        f"{_said(text, speaker)}\n"
        for n, (start, end, text, speaker) in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript, *, words: bool = False) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{timecode(start, separator='.')} --> {timecode(end, separator='.')}\n"
        f"{f'<v {speaker}>' if speaker else ''}{text}\n"
        for start, end, text, speaker in _cues(transcript)
    ]
    return "\n".join(blocks)


def to_json(transcript: Transcript, *, words: bool = False) -> str:
    return json.dumps(transcript.to_dict(words=words), ensure_ascii=False, indent=2) + "\n"


FORMATS: dict[str, Callable[..., str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
}


def render(transcript: Transcript, fmt: str, *, words: bool = False) -> str:
    """Render in ``fmt``; ``words`` adds word timings to json."""
    try:
        formatter = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}") from None
    return formatter(transcript, words=words)
