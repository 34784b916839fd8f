"""The glossary's decode of a window: first pass, survey, biased decode, audio checks.

With a ``HotwordSelector`` (a glossary), a window is decoded in steps:

1. the **first pass**, quick and unbiased: what the audio sounds like to the model;
2. the **survey**, quick, offered the hotwords ``selector.survey`` gives for what the
   first pass heard (none: no survey);
3. the **biased decode**, offered the hotwords ``selector(first_pass, survey)`` chooses;
   one that lost much of what the first pass heard (``lost_words``) is replaced by an
   unbiased decode, its text kept as the hearing's ``biased_decode``;
4. the **audio checks**: ``selector.alternatives`` proposes term spellings for each
   decoded segment, and each is scored against the segment's audio (``check_segments``).
   The text is not changed here; post-correction decides.

All of it is kept as the window's ``Hearing``. A biased window's segments are held until
all of that is done. Why: docs/glossary-design.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from transcription.engine.audio import SAMPLE_RATE_HZ
from transcription.engine.decoding import DecodedWindow, SegmentCallback, WindowDecoder
from transcription.engine.hearing import (
    Alternative,
    CheckedAlternative,
    CheckedSegment,
    Hearing,
    HotwordSelector,
)
from transcription.engine.listening import Listener
from transcription.engine.types import Segment
from transcription.engine.windows import WHISPER_CHUNK_S, Window

# A biased decode with fewer words than this share of the first pass's (which heard at
# least LOST_WORDS_MIN) lost speech: the window is decoded again without hotwords.
LOST_WORDS_RATIO = 0.6
LOST_WORDS_MIN = 8
# A segment's audio is scored with at least this much either side of its timestamps, which
# Whisper places coarsely; alternatives past the first MAX_CHECKS_PER_SEGMENT are not scored.
CHECK_PAD_S = 0.2
MAX_CHECKS_PER_SEGMENT = 48


def decode_with_selector(
    decoder: WindowDecoder, selector: HotwordSelector, *, emit: SegmentCallback | None
) -> DecodedWindow:
    """Decode a window with the hotwords ``selector`` chooses from its quick passes; show
    its segments to ``emit`` once the window is decoded and checked."""
    options = decoder.options
    heard = decoder.quick_pass(options)
    survey = selector.survey(heard)
    # Offered hotwords, a pass does not condition on its own previous text: with both in
    # its prompt, Whisper loops ("Weaviate. Weaviate. …") and skips speech across a long
    # window.
    own_text = dataclasses.replace(options, condition_on_previous_text=False)
    surveyed = decoder.quick_pass(own_text, hotwords=survey) if survey else None
    hotwords = selector(heard, surveyed)
    decoded = decoder.decode(dataclasses.replace(own_text, hotwords=hotwords), emit=None)
    biased_decode = None
    if lost_words(decoded.segments, heard):
        biased_decode = "".join(segment.text for segment in decoded.segments)
        decoded = decoder.decode(dataclasses.replace(options, hotwords=None), emit=None)
    info = decoded.info
    listener = Listener(decoder.model, decoder.language or (info.language if info else None))
    proposed = selector.alternatives(
        [segment.text for segment in decoded.segments], first_pass=heard, survey=surveyed
    )
    checked = check_segments(listener, decoder.window, decoded.segments, proposed, decoder.report)
    if emit:
        for segment in decoded.segments:
            emit(segment)
    hearing = Hearing(
        start=round(decoder.window.start_s, 3),
        end=round(decoder.window.end_s, 3),
        first_pass=heard,
        survey=surveyed,
        biased_decode=biased_decode,
        checked=tuple(checked),
    )
    return dataclasses.replace(decoded, hotwords=hotwords, hearing=hearing)


def lost_words(decoded: list[Segment], first_pass: str) -> bool:
    """Whether a biased decode wrote much less than the window's first pass heard: a
    prompt can make Whisper skip speech ("Login goes through Keycloak with OIDC, and the
    API checks the JWT on every request" came out as "JWT on every request")."""
    heard = len(first_pass.split())
    written = sum(len(segment.text.split()) for segment in decoded)
    return heard >= LOST_WORDS_MIN and written < LOST_WORDS_RATIO * heard


def check_segments(
    listener: Listener,
    window: Window,
    decoded: list[Segment],
    proposed: Sequence[tuple[str, Sequence[Alternative]]],
    report: Callable[[float], None],
) -> list[CheckedSegment]:
    """Score each segment's alternatives against the segment's audio: ``gain`` is how much
    likelier (nats) the model finds the text with the alternative than without, the term
    offered to both (``transcription.engine.listening``). Post-correction decides.
    ``report(segment_end)`` after each segment: a job can be cancelled, or give way to live
    streams, between two segments' checks."""
    start_s, end_s = window.start_s, window.end_s
    checked = []
    for index, (segment, (text, alternatives)) in enumerate(zip(decoded, proposed, strict=True)):
        if not alternatives:
            continue
        # From the previous segment's end to the next one's start: words a decode left
        # out lie between segments, and a term put back there must be heard.
        before = decoded[index - 1].end if index else start_s
        after = decoded[index + 1].start if index + 1 < len(decoded) else end_s
        low_s = max(min(before, segment.start - CHECK_PAD_S), segment.end - WHISPER_CHUNK_S)
        high_s = min(max(after, segment.end + CHECK_PAD_S), low_s + WHISPER_CHUNK_S)
        low, high = (max(0, int((t - start_s) * SAMPLE_RATE_HZ)) for t in (low_s, high_s))
        clip = listener.clip(window.audio[low:high])
        scored = []
        for alternative in alternatives[:MAX_CHECKS_PER_SEGMENT]:
            changed = text[: alternative.start] + alternative.text + text[alternative.end :]
            scored.append(
                CheckedAlternative(
                    start=alternative.start,
                    end=alternative.end,
                    heard=text[alternative.start : alternative.end],
                    text=alternative.text,
                    term=alternative.term,
                    reason=alternative.reason,
                    gain=round(clip.gain(text, changed, prompt=alternative.term), 3),
                )
            )
        checked.append(CheckedSegment(segment.start, segment.end, text, tuple(scored)))
        report(segment.end)
    return checked
