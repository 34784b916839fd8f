"""Who said what: speaker turns put onto a transcript, and stereo channels as speakers.

``assign_speakers`` gives every word (or, without word timings, every segment) the speaker
whose turns overlap it most, and splits a segment where its words change speaker.
``transcribe_channels`` transcribes each channel of a multi-channel recording (one speaker
per channel, as call centres record) and labels the segments by channel: no model needed.

Turns come from anywhere: the pyannote diarizer (``transcription.engine.diarization``),
or plain tuples in tests. Nothing here imports torch or pyannote.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from transcription.engine.audio import probe
from transcription.engine.decoding import SegmentCallback
from transcription.engine.errors import EngineError
from transcription.engine.hearing import HotwordSelector
from transcription.engine.manager import LoadedModel
from transcription.engine.pipeline import (
    CancelCallback,
    ProgressCallback,
    TurnCallback,
    transcribe,
)
from transcription.engine.types import (
    Metrics,
    Segment,
    SpeechRegion,
    TranscribeOptions,
    Transcript,
    Word,
)

# A word or segment no turn overlaps (Whisper's word times are approximate) takes the
# nearest turn's speaker when that turn is at most this far away; farther, it has none.
NEAREST_TURN_MAX_S = 1.0
CHANNEL_LABEL = "CHANNEL_{}"  # 0-based, as FFmpeg numbers channels: CHANNEL_0 is the left


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str


def turns_from_tuples(turns: Iterable[tuple[float, float, str]]) -> list[SpeakerTurn]:
    """Return ``(start, end, speaker)`` tuples as turns in time order."""
    return sorted((SpeakerTurn(float(s), float(e), str(k)) for s, e, k in turns), key=_turn_key)


def turns_from_annotation(annotation) -> list[SpeakerTurn]:
    """Return the turns of a ``pyannote.core.Annotation`` (duck-typed: no pyannote import)."""
    return sorted(
        (
            SpeakerTurn(round(float(segment.start), 3), round(float(segment.end), 3), str(label))
            for segment, _track, label in annotation.itertracks(yield_label=True)
        ),
        key=_turn_key,
    )


def _turn_key(turn: SpeakerTurn) -> tuple[float, float, str]:
    return turn.start, turn.end, turn.speaker


def speaker_at(start: float, end: float, turns: Sequence[SpeakerTurn]) -> str | None:
    """Return the speaker whose turns overlap ``[start, end]`` most.

    Overlap is summed per speaker (two turns of the same speaker count together); a tie
    goes to the speaker who spoke first in the span. With no overlap (a zero-length word,
    a gap between turns) the nearest turn within ``NEAREST_TURN_MAX_S`` decides.
    """
    overlap: dict[str, float] = {}
    first_seen: dict[str, float] = {}
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
            first_seen.setdefault(turn.speaker, max(start, turn.start))
    if overlap:
        return max(overlap, key=lambda s: (overlap[s], -first_seen[s]))
    nearest: tuple[float, str] | None = None
    for turn in turns:
        distance = max(turn.start - end, start - turn.end, 0.0)
        if distance <= NEAREST_TURN_MAX_S and (nearest is None or distance < nearest[0]):
            nearest = (distance, turn.speaker)
    return nearest[1] if nearest else None


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """Return ``transcript`` with speakers on its segments and words.

    A segment with word timings is split wherever its words change speaker; one without
    is labelled as a whole. A word no turn reaches takes its neighbour's speaker, so a
    segment is not split around a word that fell into a pause.
    """
    segments: list[Segment] = []
    for segment in transcript.segments:
        segments += _split_by_speaker(segment, turns)
    segments = [dataclasses.replace(s, id=i) for i, s in enumerate(segments)]
    return dataclasses.replace(transcript, segments=tuple(segments), speakers=_labels(segments))


def _split_by_speaker(segment: Segment, turns: Sequence[SpeakerTurn]) -> list[Segment]:
    if not segment.words:
        return [dataclasses.replace(segment, speaker=speaker_at(segment.start, segment.end, turns))]
    found = [speaker_at(w.start, w.end, turns) for w in segment.words]
    speakers = _fill_gaps(found)
    if speakers[0] is None:  # no word reached any turn: try the segment's span as a whole
        speakers = [speaker_at(segment.start, segment.end, turns)] * len(speakers)
    runs: list[list[Word]] = []
    for word, speaker in zip(segment.words, speakers, strict=True):
        labelled = dataclasses.replace(word, speaker=speaker)
        if runs and runs[-1][-1].speaker == speaker:
            runs[-1].append(labelled)
        else:
            runs.append([labelled])
    if len(runs) == 1:
        return [dataclasses.replace(segment, words=tuple(runs[0]), speaker=runs[0][0].speaker)]
    parts = []
    for i, run in enumerate(runs):
        parts.append(
            dataclasses.replace(
                segment,
                start=segment.start if i == 0 else run[0].start,
                end=segment.end if i == len(runs) - 1 else run[-1].end,
                text="".join(w.text for w in run),
                words=tuple(run),
                speaker=run[0].speaker,
            )
        )
    return parts


def _fill_gaps(speakers: list[str | None]) -> list[str | None]:
    """Give each unlabelled word the speaker of the word before it (or after, at the start)."""
    filled = list(speakers)
    for i in range(1, len(filled)):
        if filled[i] is None:
            filled[i] = filled[i - 1]
    for i in range(len(filled) - 2, -1, -1):
        if filled[i] is None:
            filled[i] = filled[i + 1]
    return filled


def _labels(segments: Iterable[Segment]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.speaker for s in segments if s.speaker is not None))


# --- channels as speakers ---------------------------------------------------------------


def transcribe_channels(
    path: Path,
    model: LoadedModel,
    options: TranscribeOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_segment: SegmentCallback | None = None,
    should_cancel: CancelCallback | None = None,
    select_hotwords: HotwordSelector | None = None,
    wait_turn: TurnCallback | None = None,
) -> Transcript:
    """Transcribe each channel of ``path`` on its own; label segments ``CHANNEL_<n>``.

    For recordings with one speaker per channel (a call's two sides). Progress runs over
    all channels in turn; ``on_segment`` gets each channel's segments labelled, numbered
    on from the channels before. The callbacks are ``transcribe``'s. Raises EngineError
    (permanent) for a file with fewer than two channels: there is nothing to tell apart.
    """
    started = time.perf_counter()
    info = probe(Path(path))
    if info.channels < 2:
        raise EngineError(
            f'diarize: "channels" needs a recording with one speaker per channel, and this '
            f"file has {info.channels} channel(s). Send the stereo original, or use "
            '"diarize": true to tell speakers apart by voice.',
            permanent=True,
        )
    parts: list[Transcript] = []
    for channel in range(info.channels):
        done_s = channel * (info.duration_s or 0.0)
        speaker = CHANNEL_LABEL.format(channel)
        numbered = sum(len(p.segments) for p in parts)

        def segment_done(segment: Segment, speaker: str = speaker, numbered: int = numbered):
            if on_segment is not None:
                labelled = _label_segment(segment, speaker)
                on_segment(dataclasses.replace(labelled, id=numbered + segment.id))

        def progress(processed_s: float, total_s: float | None, done_s: float = done_s) -> None:
            if on_progress is not None:  # each channel is a pass over the whole file
                on_progress((done_s + processed_s) / info.channels, total_s)

        part = transcribe(
            path,
            model,
            options,
            on_progress=progress if on_progress else None,
            on_segment=segment_done if on_segment else None,
            should_cancel=should_cancel,
            select_hotwords=select_hotwords,
            channel=channel,
            wait_turn=wait_turn,
        )
        parts.append(_label(part, speaker))
    return _merge_channels(parts, time.perf_counter() - started)


def _label_segment(segment: Segment, speaker: str) -> Segment:
    words = segment.words
    if words is not None:
        words = tuple(dataclasses.replace(w, speaker=speaker) for w in words)
    return dataclasses.replace(segment, speaker=speaker, words=words)


def _label(transcript: Transcript, speaker: str) -> Transcript:
    segments = tuple(_label_segment(s, speaker) for s in transcript.segments)
    return dataclasses.replace(transcript, segments=segments, speakers=(speaker,))


def _merge_channels(parts: list[Transcript], elapsed_s: float) -> Transcript:
    """One transcript of all channels: segments in time order, speech as the union."""
    segments = sorted(
        (s for part in parts for s in part.segments), key=lambda s: (s.start, s.end, s.speaker)
    )
    segments = [dataclasses.replace(s, id=i) for i, s in enumerate(segments)]
    speech = _union(r for part in parts for r in part.speech)
    duration = max(part.duration_s for part in parts)
    speech_s = sum(r.end - r.start for r in speech)
    # The language of the channel that said most (each channel detects its own).
    talker = max(parts, key=lambda p: sum(s.end - s.start for s in p.segments))
    vad_on = all(p.metrics.vad_speech_coverage is not None for p in parts)
    decoding = {**parts[0].run.decoding, "diarize": "channels", "channels": len(parts)}
    # Each channel's windows were heard on their own: keep them all, each with its speaker.
    hearings = [
        {**hearing, "speaker": part.speakers[0]}
        for part in parts
        for hearing in part.run.decoding.get("hearings_per_window") or []
    ]
    if hearings:
        decoding["hearings_per_window"] = hearings
    return Transcript(
        language=talker.language,
        language_probability=talker.language_probability,
        duration_s=duration,
        segments=tuple(segments),
        speech=tuple(speech),
        run=dataclasses.replace(parts[0].run, decoding=decoding),
        metrics=Metrics.measured(
            duration_s=duration,
            processing_s=elapsed_s,
            speech_s=speech_s,
            confidences=(s.confidence for s in segments),
            windows=sum(p.metrics.windows for p in parts),
            vad=vad_on,
        ),
        speakers=tuple(p.speakers[0] for p in parts),  # every channel, even a silent one
    )


def _union(regions: Iterable[SpeechRegion]) -> list[SpeechRegion]:
    merged: list[SpeechRegion] = []
    for region in sorted(regions, key=lambda r: (r.start, r.end)):
        if merged and region.start <= merged[-1].end:
            if region.end > merged[-1].end:
                merged[-1] = SpeechRegion(merged[-1].start, region.end)
        else:
            merged.append(region)
    return merged
