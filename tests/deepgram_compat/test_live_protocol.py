"""Deepgram's live protocol without a socket: the query, the audio, and the worker's
events as Deepgram's messages (``deepgram_compat.live``, ``deepgram_compat.audio``)."""

from __future__ import annotations

from urllib.parse import parse_qs

import numpy as np
import pytest

from accounts.websocket import key_from_scope
from deepgram_compat.audio import TABLES, PcmFrames
from deepgram_compat.live import LiveTranslation, ParameterError, read_live


def query(text: str):
    return read_live(parse_qs(text, keep_blank_values=True))


def word(text: str, start: float, end: float, probability: float = 0.9) -> dict:
    return {"text": f" {text}", "start": start, "end": end, "probability": probability}


def final(text: str, start: float, end: float, **flags) -> dict:
    words = [word(w, start + i * 0.3, start + (i + 1) * 0.3) for i, w in enumerate(text.split())]
    segment = {"text": text, "start": start, "end": end, "words": words, "confidence": 0.8}
    return {"type": "final", "segment": segment, **flags}


def partial(text: str, start: float, end: float) -> dict:
    words = [word(w, start + i * 0.3, start + (i + 1) * 0.3) for i, w in enumerate(text.split())]
    return {"type": "partial", "text": text, "start": start, "end": end, "words": words}


def test_the_query_maps_deepgrams_names_onto_the_live_lane():
    live = query(
        "model=nova-3&language=en-US&encoding=mulaw&interim_results=true&endpointing=300"
        "&keyterm=vLLM&keywords=Kubernetes:2&keywords=vLLM&filler_words=true&no_delay=true"
    )

    assert live.scribe_options() == {
        "language": "en",
        "sample_rate": 8000,  # mulaw's telephony default
        "hotwords": ["vLLM", "Kubernetes"],
    }
    assert live.tuning() == {"step_s": 0.5, "pause_s": 0.3, "watch_pause": True}
    assert query("endpointing=false").tuning() == {"step_s": 0.5}
    assert live.ignored == ("filler_words", "no_delay")
    assert query("language=multi").language is None
    assert query("language=ko-KR").language == "ko"
    assert query("endpointing=false").endpointing_ms is None
    assert query("").endpointing_ms == 10 and query("").encoding == "linear16"


@pytest.mark.parametrize(
    "text, says",
    [
        ("encoding=opus", "opus"),
        ("endpointing=soon", "whole number"),
        ("interim_results=maybe", "boolean"),
        ("sample_rate=100", "out of range"),
    ],
)
def test_a_parameter_scribe_cannot_honour_is_an_error_that_says_so(text, says):
    with pytest.raises(ParameterError, match=says):
        query(text)


def test_g711_tables_decode_the_reference_codes():
    # ITU-T G.711: μ-law 0x00/0x80 are the extremes, 0x7F/0xFF silence; A-law 0xD5/0x55 ±8.
    assert [int(TABLES["mulaw"][c]) for c in (0x00, 0x7F, 0x80, 0xFF)] == [-32124, 0, 32124, 0]
    assert [int(TABLES["alaw"][c]) for c in (0xD5, 0x55, 0xAA, 0x2A)] == [8, -8, 32256, -32256]


def test_frames_that_split_samples_and_channels_lose_nothing():
    stereo = np.array([[100, 300], [-200, -400], [1000, 3000]], dtype="<i2").tobytes()
    frames = PcmFrames("linear16", channels=2)

    out = frames.pcm(stereo[:5]) + frames.pcm(stereo[5:9]) + frames.pcm(stereo[9:])

    assert np.frombuffer(out, dtype="<i2").tolist() == [200, -300, 2000]


def test_multichannel_frames_split_into_one_stream_per_channel():
    stereo = np.array([[100, 300], [-200, -400], [1000, 3000]], dtype="<i2").tobytes()
    frames = PcmFrames("linear16", channels=2)

    parts = [frames.split(stereo[:5]), frames.split(stereo[5:9]), frames.split(stereo[9:])]

    left, right = (b"".join(part[c] for part in parts) for c in (0, 1))
    assert np.frombuffer(left, dtype="<i2").tolist() == [100, -200, 1000]
    assert np.frombuffer(right, dtype="<i2").tolist() == [300, -400, 3000]


def test_multichannel_results_name_their_channel_of_all():
    live = query("channels=3&multichannel=true&interim_results=true&vad_events=true")
    mixed = query("channels=3&interim_results=true")
    second = LiveTranslation(live, channel=1)

    started, interim = second.event(partial("so my", 0.2, 0.8))
    final_result = second.event(final("So my.", 0.2, 0.8))[0]

    assert (live.transcribed_channels, mixed.transcribed_channels) == (3, 1)
    assert started["channel"] == interim["channel_index"] == final_result["channel_index"] == [1, 3]
    assert second.metadata()["channels"] == 3


def test_interims_finals_and_the_end_of_speech_in_deepgrams_words():
    live = LiveTranslation(query("interim_results=true&punctuate=true&vad_events=true"))
    live.event({"type": "ready", "job_id": "job-1", "model": "tiny.en"})

    started, interim = live.event(partial("so my", 0.2, 0.8))
    first = live.event(final("So my fellow.", 0.2, 1.4, end_of_speech=True))[0]

    assert started == {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 0.2}
    assert (interim["is_final"], interim["channel"]["alternatives"][0]["transcript"]) == (
        False,
        "so my",
    )
    assert first["is_final"] and first["speech_final"] and not first["from_finalize"]
    assert first["channel"]["alternatives"][0]["words"][-1] == {
        "word": "fellow",
        "start": 0.8,
        "end": 1.1,
        "confidence": 0.9,
        "punctuated_word": "fellow.",
    }
    assert (first["start"], first["duration"]) == (0.0, 1.4)
    assert first["metadata"]["request_id"] == "job-1"
    assert first["metadata"]["model_info"]["name"] == "tiny.en"
    # A new utterance starts again; one whose words were final already ends empty.
    assert live.event(partial("ask", 2.0, 2.3))[0]["type"] == "SpeechStarted"
    empty = live.event({"type": "end_of_speech", "at": 2.3})[0]
    assert empty["speech_final"] and empty["channel"]["alternatives"][0]["transcript"] == ""


def test_the_finals_of_a_finalize_come_as_one_result_and_nothing_says_empty():
    live = LiveTranslation(query("punctuate=false"))
    live.audio(bytes(2 * 16000 * 3))

    held = live.event(final("Ask not.", 0.5, 1.2, flushed=True))
    held += live.event(final("What your", 1.3, 2.0, flushed=True))
    (flushed,) = live.event({"type": "finalized"})
    (nothing,) = live.event({"type": "finalized"})

    assert held == []
    assert flushed["from_finalize"] and flushed["is_final"] and not flushed["speech_final"]
    # punctuate=false: Deepgram's plain words.
    assert flushed["channel"]["alternatives"][0]["transcript"] == "ask not what your"
    assert nothing["from_finalize"] and nothing["channel"]["alternatives"][0]["transcript"] == ""
    assert live.metadata()["duration"] == 3.0


def test_utterance_end_follows_the_last_word_by_utterance_end_ms_of_audio():
    live = LiveTranslation(query("interim_results=true&utterance_end_ms=1000"))
    live.event(partial("so my", 0.2, 0.8))
    second = 2 * 16000

    assert live.audio(bytes(int(second * 1.7))) == []
    (end,) = live.audio(bytes(second // 5))
    assert end == {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 0.8}
    assert live.audio(bytes(second * 3)) == [], "once per utterance"


def test_interims_are_sent_only_when_asked_for():
    live = LiveTranslation(query("interim_results=false"))

    assert live.event(partial("so my", 0.2, 0.8)) == []


@pytest.mark.parametrize(
    "headers, subprotocols",
    [
        ([(b"authorization", b"Token sk_1")], []),
        ([(b"authorization", b"Bearer sk_1")], []),
        ([], ["token", "sk_1"]),
    ],
)
def test_deepgrams_ways_of_sending_the_key_are_read(headers, subprotocols):
    assert key_from_scope({"headers": headers, "subprotocols": subprotocols}) == "sk_1"
