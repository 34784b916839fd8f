from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.media import write_mp4, write_tone_wav, write_wav
from transcription.engine import MediaError, NoAudioStreamError, probe, stream_audio
from transcription.engine.audio import decode_all


def test_it_decodes_a_44khz_stereo_file_to_16khz_mono_float32(tone_wav):
    audio = decode_all(tone_wav)

    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert abs(audio.shape[0] - 3 * 16000) <= 16  # resampler edge, not a whole frame
    # The tone survives resampling: its spectrum peaks at 440 Hz.
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * 16000 / audio.shape[0] == pytest.approx(440, abs=2)


def test_it_streams_in_chunks_no_longer_than_asked(tmp_path):
    path = write_tone_wav(tmp_path / "long.wav", seconds=5.5)

    chunks = list(stream_audio(path, chunk_s=1.0))

    assert [c.shape[0] for c in chunks[:-1]] == [16000] * 5
    assert 0 < chunks[-1].shape[0] <= 16000
    assert sum(c.shape[0] for c in chunks) == pytest.approx(5.5 * 16000, abs=16)


def test_it_matches_faster_whispers_own_decoder_on_real_speech(jfk):
    from faster_whisper.audio import decode_audio  # noqa: TID251 - the reference decoder

    np.testing.assert_array_equal(decode_all(jfk), decode_audio(str(jfk)))


def test_it_reads_the_sound_track_of_a_video(tmp_path):
    sound = 0.3 * np.sin(2 * np.pi * 300 * np.arange(32000) / 16000)
    video = write_mp4(tmp_path / "clip.mp4", audio=sound)

    info = probe(video)
    audio = decode_all(video)

    assert info.has_video and info.audio_codec == "aac"
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert audio.shape[0] == pytest.approx(32000, abs=1024)  # AAC pads a frame


def test_it_rejects_a_video_without_sound(tmp_path):
    video = write_mp4(tmp_path / "silent.mp4", audio=None)

    with pytest.raises(NoAudioStreamError, match="no audio stream"):
        probe(video)
    with pytest.raises(NoAudioStreamError):
        list(stream_audio(video))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"hello, this is a text file and not audio at all\n" * 20, "not an audio or video file"),
        (bytes(range(256)) * 64, "not an audio or video file"),
    ],
    ids=["empty", "text", "random-bytes"],
)
def test_it_explains_why_a_file_is_not_readable(tmp_path, content, reason):
    path = tmp_path / "input.mp3"
    path.write_bytes(content)

    with pytest.raises(MediaError) as caught:
        probe(path)

    assert reason in caught.value.message
    assert str(path) in caught.value.message
    assert caught.value.permanent is True


def test_it_rejects_a_truncated_file(tmp_path, jfk):
    truncated = tmp_path / "cut.flac"
    truncated.write_bytes(jfk.read_bytes()[:200])

    with pytest.raises(MediaError):
        decode_all(truncated)


def test_it_rejects_a_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "nope.wav")


def test_probe_reads_the_duration_without_decoding(tmp_path):
    path = write_wav(tmp_path / "seven.wav", np.zeros(7 * 8000), rate=8000)

    assert probe(Path(path)).duration_s == pytest.approx(7.0)
