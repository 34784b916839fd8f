"""Speaker assignment over real engine output (tiny.en on jfk.flac), and speaker-aware
formats. Turn timelines are built from the transcript's own word times, so each case
puts a boundary exactly where it means to."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.conftest import shared_clip
from transcription.engine import (
    TranscribeOptions,
    Transcript,
    render,
    transcribe,
    transcript_from_dict,
)
from transcription.engine.speakers import (
    NEAREST_TURN_MAX_S,
    assign_speakers,
    speaker_at,
    turns_from_tuples,
)

pytestmark = [pytest.mark.real_model, pytest.mark.shared_audio]


@pytest.fixture(scope="module")
def jfk_words(tiny_en) -> Transcript:
    """jfk.flac as tiny.en hears it, with word timings: one segment of 22 words."""
    transcript = transcribe(
        shared_clip("jfk.flac"), tiny_en, TranscribeOptions(language="en", word_timestamps=True)
    )
    words = [w for s in transcript.segments for w in s.words or ()]
    assert len(words) >= 10, "tiny.en should hear the whole sentence"
    return transcript


def all_words(transcript: Transcript):
    return [w for s in transcript.segments for w in s.words or ()]


def test_a_single_speaker_labels_every_segment_and_word_and_splits_nothing(jfk_words):
    labelled = assign_speakers(jfk_words, turns_from_tuples([(0.0, 11.0, "SPEAKER_00")]))

    assert len(labelled.segments) == len(jfk_words.segments)
    assert {s.speaker for s in labelled.segments} == {"SPEAKER_00"}
    assert {w.speaker for w in all_words(labelled)} == {"SPEAKER_00"}
    assert labelled.speakers == ("SPEAKER_00",)
    assert labelled.text == jfk_words.text


def test_a_segment_is_split_where_the_speaker_changes_inside_it(jfk_words):
    segment = max(jfk_words.segments, key=lambda s: len(s.words or ()))
    words = segment.words
    k = len(words) // 2  # A says words[:k], B the rest
    change = (words[k - 1].end + words[k].start) / 2
    turns = turns_from_tuples([(0.0, change, "A"), (change, 11.0, "B")])

    labelled = assign_speakers(jfk_words, turns)

    parts = [s for s in labelled.segments if segment.start <= s.start < segment.end]
    assert [p.speaker for p in parts] == ["A", "B"]
    assert [w.text for w in parts[0].words] == [w.text for w in words[:k]]
    assert [w.text for w in parts[1].words] == [w.text for w in words[k:]]
    assert parts[0].text + parts[1].text == segment.text
    assert parts[0].start == segment.start and parts[1].end == segment.end
    assert parts[0].end == words[k - 1].end and parts[1].start == words[k].start
    assert [s.id for s in labelled.segments] == list(range(len(labelled.segments)))
    assert labelled.speakers == ("A", "B")


@pytest.mark.parametrize("winner", ["A", "B"])
def test_a_word_in_overlapping_turns_goes_to_the_speaker_covering_more_of_it(jfk_words, winner):
    words = all_words(jfk_words)
    k = next(i for i, w in enumerate(words) if i > 2 and w.end - w.start >= 0.2)
    word = words[k]
    length = word.end - word.start
    # Both turns cover part of the word; the winner's share is 0.7 of it, the other's 0.4.
    a_end = word.start + (0.7 if winner == "A" else 0.4) * length
    b_start = word.end - (0.7 if winner == "B" else 0.4) * length
    turns = turns_from_tuples([(0.0, a_end, "A"), (b_start, 11.0, "B")])

    labelled = all_words(assign_speakers(jfk_words, turns))

    assert labelled[k].speaker == winner
    assert {w.speaker for w in labelled[:k]} == {"A"}
    assert {w.speaker for w in labelled[k + 1 :]} == {"B"}


def test_words_in_a_gap_between_turns_take_the_nearest_speaker_or_their_neighbour(jfk_words):
    words = all_words(jfk_words)
    # Speaker A's turn ends before word 3; B starts after word 8: words 3..8 are in a gap.
    turns = turns_from_tuples([(0.0, words[2].end, "A"), (words[9].start, 11.0, "B")])

    labelled = all_words(assign_speakers(jfk_words, turns))

    for i in range(3, 9):
        to_a = words[i].start - words[2].end
        to_b = words[9].start - words[i].end
        if min(to_a, to_b) <= NEAREST_TURN_MAX_S:
            assert labelled[i].speaker == ("A" if to_a <= to_b else "B"), i
        else:  # no turn near it: it keeps the speaker of the word before it
            assert labelled[i].speaker == labelled[i - 1].speaker, i
    assert all(w.speaker in ("A", "B") for w in labelled)


def test_the_same_speaker_on_both_sides_of_a_pause_keeps_one_segment(jfk_words):
    words = all_words(jfk_words)
    turns = turns_from_tuples([(0.0, words[1].end, "A"), (words[-2].start, 11.0, "A")])

    labelled = assign_speakers(jfk_words, turns)

    assert len(labelled.segments) == len(jfk_words.segments)
    assert {w.speaker for w in all_words(labelled)} == {"A"}


def test_speech_no_turn_comes_near_has_no_speaker(jfk_words):
    labelled = assign_speakers(jfk_words, turns_from_tuples([(30.0, 40.0, "A")]))

    assert {s.speaker for s in labelled.segments} == {None}
    assert labelled.speakers == ()
    assert "speaker" not in json.dumps(labelled.to_dict())


def test_without_word_timings_a_segment_takes_the_speaker_of_most_of_it(jfk_words):
    plain = dataclasses.replace(
        jfk_words,
        segments=tuple(dataclasses.replace(s, words=None) for s in jfk_words.segments),
    )
    segment = plain.segments[0]
    third = segment.start + (segment.end - segment.start) / 3
    turns = turns_from_tuples([(0.0, third, "A"), (third, 11.0, "B")])

    labelled = assign_speakers(plain, turns)

    assert labelled.segments[0].speaker == "B"
    assert len(labelled.segments) == len(plain.segments)
    assert speaker_at(segment.start, third - 0.01, turns) == "A"


def test_speakers_appear_in_every_format_and_survive_a_stored_result(jfk_words):
    words = all_words(jfk_words)
    change = (words[4].end + words[5].start) / 2
    labelled = assign_speakers(
        jfk_words, turns_from_tuples([(0.0, change, "SPEAKER_00"), (change, 11.0, "SPEAKER_01")])
    )
    stored = transcript_from_dict(json.loads(render(labelled, "json", words=True)))

    assert stored.speakers == ("SPEAKER_00", "SPEAKER_01")
    assert [s.speaker for s in stored.segments] == [s.speaker for s in labelled.segments]
    assert stored.segments[0].words[0].speaker == "SPEAKER_00"
    txt = render(stored, "txt").splitlines()
    assert txt[0].startswith("SPEAKER_00: And so") and txt[1].startswith("SPEAKER_01: ")
    srt = render(stored, "srt")
    assert "\nSPEAKER_00: And so" in srt and "\nSPEAKER_01: " in srt
    vtt = render(stored, "vtt")
    assert "\n<v SPEAKER_00>And so" in vtt and "\n<v SPEAKER_01>" in vtt


def test_a_transcript_without_speakers_renders_as_before(jfk_words):
    data = jfk_words.to_dict(words=True)

    assert "speakers" not in data
    assert all("speaker" not in s for s in data["segments"])
    assert all("speaker" not in w for s in data["segments"] for w in s["words"])
    assert render(jfk_words, "txt").startswith("And so")
    assert "<v " not in render(jfk_words, "vtt")


def test_turns_from_tuples_orders_them_by_time():
    turns = turns_from_tuples([(5, 6, "B"), (1.5, 2, "A")])
    assert [(t.start, t.speaker) for t in turns] == [(1.5, "A"), (5.0, "B")]
