from __future__ import annotations

import json

import pytest

from transcription.engine import Metrics, RunRecord, Segment, Transcript, Word, render
from transcription.engine.formats import timecode


def make_transcript(*segments: Segment) -> Transcript:
    return Transcript(
        language="ko",
        language_probability=0.98,
        duration_s=3800.0,
        segments=segments,
        speech=(),
        run=RunRecord(
            pipeline_version="scribe-test",
            model_name="m",
            model_path="/m",
            model_checksum="sha256:0",
            device="cpu",
            device_index=0,
            compute_type_requested="auto",
            compute_type="int8",
            cpu_threads=2,
            decoding={"beam_size": 5},
            library_versions={},
        ),
        metrics=Metrics(
            audio_duration_s=3800.0,
            processing_time_s=38.0,
            real_time_factor=0.01,
            speech_duration_s=3000.0,
            vad_speech_coverage=0.79,
            mean_confidence=0.9,
            windows=13,
        ),
    )


def seg(i: int, start: float, end: float, text: str, words=None) -> Segment:
    return Segment(
        id=i,
        start=start,
        end=end,
        text=text,
        avg_logprob=-0.1,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        temperature=0.0,
        words=words,
    )


TRANSCRIPT = make_transcript(
    seg(
        0, 0.0, 2.5, " 그 API 서빙할 때", (Word(0.0, 0.4, " 그", 0.9), Word(0.5, 1.2, " API", 0.8))
    ),
    seg(1, 3.0, 3.0, "   "),
    seg(2, 3725.5, 3727.04, " vLLM 쓰면 성능 대박이야"),
)


@pytest.mark.parametrize(
    ("seconds", "separator", "expected"),
    [
        (0.0, ",", "00:00:00,000"),
        (59.9996, ",", "00:01:00,000"),
        (3725.5, ",", "01:02:05,500"),
        (3725.5, ".", "01:02:05.500"),
        (100 * 3600 + 1.001, ".", "100:00:01.001"),
    ],
)
def test_timecodes_carry_into_hours(seconds, separator, expected):
    assert timecode(seconds, separator=separator) == expected


def test_srt_numbers_cues_from_one_and_skips_empty_segments():
    assert render(TRANSCRIPT, "srt") == (
        "1\n00:00:00,000 --> 00:00:02,500\n그 API 서빙할 때\n\n"
        "2\n01:02:05,500 --> 01:02:07,040\nvLLM 쓰면 성능 대박이야\n"
    )


def test_vtt_has_its_header_and_dotted_timecodes():
    assert render(TRANSCRIPT, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n그 API 서빙할 때\n\n"
        "01:02:05.500 --> 01:02:07.040\nvLLM 쓰면 성능 대박이야\n"
    )


def test_txt_is_one_line_per_segment():
    assert render(TRANSCRIPT, "txt") == "그 API 서빙할 때\nvLLM 쓰면 성능 대박이야\n"


def test_json_keeps_korean_readable_and_words_only_when_asked():
    without = json.loads(render(TRANSCRIPT, "json"))
    with_words = json.loads(render(TRANSCRIPT, "json", words=True))

    assert "words" not in without["segments"][0]
    assert with_words["segments"][0]["words"][1] == {
        "start": 0.5,
        "end": 1.2,
        "text": " API",
        "probability": 0.8,
    }
    assert "서빙" in render(TRANSCRIPT, "json")  # not \\uc11c escapes
    assert without["text"] == "그 API 서빙할 때 vLLM 쓰면 성능 대박이야"
    assert without["run"]["compute_type"] == "int8"
    assert without["metrics"]["windows"] == 13
    assert without["segments"][0]["confidence"] == pytest.approx(0.9048, abs=1e-4)


def test_an_unknown_format_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="txt, srt, vtt, json"):
        render(TRANSCRIPT, "docx")


def test_metrics_divide_processing_and_speech_by_the_audio_duration():
    metrics = Metrics.measured(
        duration_s=3800.00049,
        processing_s=38.00049,
        speech_s=3000.00049,
        confidences=[0.9, 0.8, 0.85],
        windows=13,
    )
    assert metrics == Metrics(
        audio_duration_s=3800.0,
        processing_time_s=38.0,
        real_time_factor=0.01,
        speech_duration_s=3000.0,
        vad_speech_coverage=0.7895,
        mean_confidence=0.85,
        windows=13,
    )


def test_metrics_without_vad_audio_or_segments_leave_what_they_cannot_measure_empty():
    no_vad = Metrics.measured(
        duration_s=10.0, processing_s=1.0, speech_s=0.0, confidences=[], windows=1, vad=False
    )
    assert no_vad.vad_speech_coverage is None
    assert no_vad.mean_confidence is None
    silent = Metrics.measured(
        duration_s=0.0, processing_s=0.2, speech_s=0.0, confidences=(), windows=0
    )
    assert silent.real_time_factor == 0.0
    assert silent.vad_speech_coverage is None
