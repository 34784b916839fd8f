"""SpeechTail: where the silence after a live stream's speech started, kept up to date as
audio arrives, agreeing with VAD over the whole audio (``speech_regions``)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import shared_clip
from transcription.engine import SpeechTail, speech_regions
from transcription.engine.audio import SAMPLE_RATE_HZ, decode_all

pytestmark = pytest.mark.shared_audio

FRAME = SAMPLE_RATE_HZ // 20  # 50 ms: as a live client sends


def test_fed_frame_by_frame_it_finds_where_the_speech_stopped():
    speech = decode_all(shared_clip("jfk.flac"))
    audio = np.concatenate([speech, np.zeros(SAMPLE_RATE_HZ, dtype=np.float32)])
    # Where whole-audio VAD says speech ended (its regions are padded by 0.1 s).
    spoken_until = speech_regions(audio)[-1][1] - 0.1

    tail = SpeechTail()
    while_speaking, after = [], None
    for start in range(0, audio.shape[0], FRAME):
        tail.feed(audio[start : start + FRAME])
        now = (start + FRAME) / SAMPLE_RATE_HZ
        if 2.0 <= now <= spoken_until - 0.5:
            while_speaking.append(tail.silence_start_s)
        after = tail.silence_start_s

    assert after == pytest.approx(spoken_until, abs=0.1), (after, spoken_until)
    # While the speaker goes on, a silence found earlier (a breath) gives way to new speech.
    assert any(found is None for found in while_speaking)


def test_frames_of_any_size_give_the_same_answer():
    audio = np.concatenate(
        [decode_all(shared_clip("jfk.flac"))[: 3 * SAMPLE_RATE_HZ], np.zeros(8000, np.float32)]
    )
    whole, framed = SpeechTail(), SpeechTail()

    whole.feed(audio)
    for start in range(0, audio.shape[0], 333):  # frames that split Silero's windows
        framed.feed(audio[start : start + 333])

    assert whole.silence_start_s is not None
    assert framed.silence_start_s == whole.silence_start_s


def test_silence_alone_is_no_pause():
    tail = SpeechTail()

    tail.feed(np.zeros(2 * SAMPLE_RATE_HZ, dtype=np.float32))

    assert tail.silence_start_s is None


def test_a_short_sound_in_the_pause_does_not_end_it():
    speech = decode_all(shared_clip("jfk.flac"))[: 3 * SAMPLE_RATE_HZ]
    quiet = np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.float32)
    # 0.19 s cut from a word, alone in the pause: Silero scores some of its windows over
    # the threshold, never three in a row.
    click = decode_all(shared_clip("jfk.flac"))[7 * SAMPLE_RATE_HZ :][:3072]
    audio = np.concatenate([speech, quiet, click, quiet])

    def silence_after(min_windows: int) -> tuple[float | None, float | None]:
        tail = SpeechTail()
        tail.MIN_SPEECH_WINDOWS = min_windows
        tail.feed(audio[: speech.shape[0] + quiet.shape[0]])
        before = tail.silence_start_s
        tail.feed(audio[speech.shape[0] + quiet.shape[0] :])
        return before, tail.silence_start_s

    before, after = silence_after(SpeechTail.MIN_SPEECH_WINDOWS)
    _, one_window = silence_after(1)

    assert before is not None and after == before
    assert one_window != before, "the sound scores as speech; one window would end the pause"
