"""Where a transcript is unsure or invented: per-segment and per-word flags. Pure functions.

Flags mark, they never drop (a request may ask to drop flagged segments).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

LOW_WORD_PROBABILITY = 0.5
LOW_SEGMENT_CONFIDENCE = 0.5  # exp(avg_logprob)
HIGH_NO_SPEECH = 0.6
HIGH_COMPRESSION = 2.4  # faster-whisper's own fallback threshold
MIN_SPEECH_OVERLAP = 0.2  # of a segment's duration

DEFAULT_HALLUCINATIONS = {
    "ko": [
        "시청해주셔서 감사합니다",
        "시청해 주셔서 감사합니다",
        "구독과 좋아요 부탁드립니다",
        "MBC 뉴스 …입니다",
        "KBS 뉴스 …입니다",
        "SBS 뉴스 …입니다",
        "자막 제공 및 자막 편집",
        "한글자막 by …",
        "다음 영상에서 만나요",
    ],
    "en": [
        "Thanks for watching",
        "Thank you for watching",
        "Please subscribe to my channel",
        "Subtitles by …",
        "Subtitles by the Amara.org community",
        "Transcription by …",
    ],
}


def _normal(text: str) -> str:
    """Case-folded, compatibility-normalised letters, digits and marks: punctuation,
    spaces, symbols and control and format characters (a newline, a zero-width space)
    taken out."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if not unicodedata.category(c).startswith(("P", "Z", "S", "C")))


def _in_order(parts: Sequence[str], text: str) -> bool:
    """Whether ``text`` is ``parts`` in order with anything between them: the first a
    prefix, the last a suffix, each middle one where it is first found. Linear in the
    text, where a regex ``a.*b.*c`` backtracks for minutes over a long one."""
    if len(parts) == 1:
        return text == parts[0]
    first, *middle, last = parts
    end = len(text) - len(last)
    if end < len(first) or not (text.startswith(first) and text.endswith(last)):
        return False
    cursor = len(first)
    for part in middle:
        found = text.find(part, cursor, end)
        if found < 0:
            return False
        cursor = found + len(part)
    return True


def hallucination_matcher(phrases: Sequence[str]):
    """A function text -> matched phrase or None. "…" in a phrase matches anything."""
    compiled = [(phrase, [_normal(p) for p in phrase.split("…")]) for phrase in phrases]

    def match(text: str) -> str | None:
        normal = _normal(text)
        if not normal:
            return None
        for phrase, parts in compiled:
            if _in_order(parts, normal):
                return phrase
        return None

    return match


def is_repetition_loop(text: str) -> bool:
    """True for Whisper's loops: a word or phrase said four times or more in a row, or one
    character run far too long ("ㅋㅋㅋ…" aside, speech does not do this)."""
    words = text.split()
    for n in range(1, 5):
        for i in range(0, max(0, len(words) - 4 * n + 1)):
            gram = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == gram for k in range(4)):
                return True
    return bool(re.search(r"(\S{1,4})\1{7,}", text.replace(" ", "")))


def overlap_s(start: float, end: float, regions: Sequence[tuple[float, float]]) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in regions)


def segment_flags(
    segment: dict, *, speech: Sequence[tuple[float, float]] | None, hallucination
) -> list[str]:
    """Flags for one segment of a result json (``speech`` None: VAD was off)."""
    flags = []
    confidence = math.exp(min(segment.get("avg_logprob", 0.0), 0.0))
    if confidence < LOW_SEGMENT_CONFIDENCE:
        flags.append("low_confidence")
    if segment.get("no_speech_prob", 0.0) > HIGH_NO_SPEECH:
        flags.append("no_speech")
    if segment.get("compression_ratio", 0.0) > HIGH_COMPRESSION:
        flags.append("high_compression")
    text = segment.get("text", "")
    if is_repetition_loop(text):
        flags.append("repetition")
    if hallucination(text):
        flags.append("known_hallucination")
    duration = segment["end"] - segment["start"]
    if (
        speech is not None
        and text.strip()
        and duration > 0
        and overlap_s(segment["start"], segment["end"], speech) < MIN_SPEECH_OVERLAP * duration
    ):
        flags.append("outside_speech")
    return flags


def word_flags(word: dict) -> list[str]:
    return ["low_confidence"] if word.get("probability", 1.0) < LOW_WORD_PROBABILITY else []
