from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.conftest import shared_clip
from tests.media import write_wav
from transcription.engine import (
    MediaError,
    TranscribeOptions,
    TranscriptionCancelled,
    transcribe,
)
from transcription.engine.audio import decode_all

FRAME_S = 0.03


def frame_db(audio: np.ndarray) -> np.ndarray:
    """Loudness of each 30 ms frame in dB: an independent look at where the speech is."""
    size = int(FRAME_S * 16000)
    frames = audio[: audio.shape[0] // size * size].reshape(-1, size)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)


def inside(t: float, regions, slack: float = 0.0) -> bool:
    return any(r.start - slack <= t <= r.end + slack for r in regions)


def speech_with_pauses(tmp_path, repeats: int, pause_s: float = 1.5):
    """Real speech repeated with silent pauses between the repeats, as one WAV."""
    speech = decode_all(shared_clip("jfk.flac"))
    pause = np.zeros(int(pause_s * 16000), dtype=np.float32)
    audio = np.concatenate([part for _ in range(repeats) for part in (speech, pause)])
    return write_wav(tmp_path / f"jfk-x{repeats}.wav", audio), audio


def test_it_returns_a_transcript_with_a_run_record_and_metrics(loaded_model, model_dir, jfk):
    transcript = transcribe(jfk, loaded_model, TranscribeOptions())

    assert transcript.duration_s == pytest.approx(11.0, abs=0.01)
    assert transcript.language in {"en", "de", "ko"} or len(transcript.language) == 2
    assert transcript.segments, "the test model decodes some (nonsense) text"
    run = transcript.run
    expected = hashlib.sha256((model_dir / "model.bin").read_bytes()).hexdigest()
    assert run.model_checksum == f"sha256:{expected}"
    assert run.model_path == str(model_dir)
    assert (run.device, run.compute_type_requested, run.compute_type) == (
        "cpu",
        "int8",
        "int8_float32",
    )
    assert run.pipeline_version.startswith("scribe-")
    assert run.decoding["beam_size"] == 5 and run.decoding["vad"] is True
    metrics = transcript.metrics
    assert metrics.audio_duration_s == transcript.duration_s
    # Both figures are rounded (to 1 ms and 4 decimals): allow for it on a fast run.
    assert metrics.real_time_factor == pytest.approx(
        metrics.processing_time_s / metrics.audio_duration_s, rel=0.01, abs=2e-4
    )
    assert metrics.windows == 1
    assert 0 < metrics.mean_confidence <= 1


def test_vad_speech_regions_follow_the_loudness_of_the_audio(loaded_model, jfk):
    transcript = transcribe(jfk, loaded_model, TranscribeOptions())
    db = frame_db(decode_all(jfk))
    times = (np.arange(db.shape[0]) + 0.5) * FRAME_S
    speech = transcript.speech
    in_speech = np.array([inside(t, speech) for t in times])

    # Loud frames (within 20 dB of the loudest) are speech, and VAD keeps nearly all of them.
    loud = db > np.percentile(db, 99) - 20
    assert in_speech[loud].mean() > 0.97
    # What VAD calls silence is much quieter than what it calls speech.
    assert np.median(db[in_speech]) > np.median(db[~in_speech]) + 10
    # jfk.flac has real pauses: coverage is neither all nor nothing, and agrees with regions.
    coverage = transcript.metrics.vad_speech_coverage
    assert 0.6 < coverage < 0.95
    assert coverage == pytest.approx(sum(r.end - r.start for r in speech) / 11.0, abs=0.002)
    # Segments are placed on speech, never in a pause.
    for segment in transcript.segments:
        assert inside(segment.start, speech, slack=0.05)
        assert inside(segment.end, speech, slack=0.05)


def test_word_timestamps_lie_within_their_segments(loaded_model, jfk):
    transcript = transcribe(jfk, loaded_model, TranscribeOptions(word_timestamps=True))

    words = [w for s in transcript.segments for w in s.words]
    assert words
    for segment in transcript.segments:
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert 0.0 <= word.probability <= 1.0


def test_long_audio_is_cut_into_windows_at_pauses_without_moving_anything(loaded_model, tmp_path):
    path, audio = speech_with_pauses(tmp_path, repeats=4)
    duration = audio.shape[0] / 16000

    whole = transcribe(path, loaded_model, TranscribeOptions(), window_s=120)
    windowed = transcribe(path, loaded_model, TranscribeOptions(), window_s=15)

    assert whole.metrics.windows == 1
    assert windowed.metrics.windows >= 3
    assert windowed.duration_s == pytest.approx(duration, abs=0.01)
    # Same speech found either way: cutting at pauses shifts no region in file time. (Silero
    # carries state across frames, so a window starting in a pause may move an onset by a
    # frame or two; a wrong window offset would move it by seconds.)
    assert len(windowed.speech) == len(whole.speech)
    for a, b in zip(windowed.speech, whole.speech, strict=True):
        assert a.start == pytest.approx(b.start, abs=0.25)
        assert a.end == pytest.approx(b.end, abs=0.25)
    starts = [s.start for s in windowed.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start <= s.end <= duration for s in windowed.segments)
    assert [s.id for s in windowed.segments] == list(range(len(windowed.segments)))


def test_progress_rises_to_the_duration(loaded_model, tmp_path):
    path, audio = speech_with_pauses(tmp_path, repeats=3)
    calls: list[tuple[float, float | None]] = []

    transcribe(
        path,
        loaded_model,
        TranscribeOptions(),
        window_s=15,
        on_progress=lambda done, total: calls.append((done, total)),
    )

    done = [c[0] for c in calls]
    assert done == sorted(done)
    assert len(calls) >= 3
    assert done[-1] == pytest.approx(audio.shape[0] / 16000, abs=0.01)
    assert calls[0][1] == pytest.approx(audio.shape[0] / 16000, abs=0.01)


def test_cancel_stops_at_the_next_segment_boundary(loaded_model, tmp_path):
    path, audio = speech_with_pauses(tmp_path, repeats=4)
    reports: list[float] = []

    with pytest.raises(TranscriptionCancelled) as caught:
        transcribe(
            path,
            loaded_model,
            TranscribeOptions(),
            window_s=15,
            on_progress=lambda done, total: reports.append(done),
            should_cancel=lambda: len(reports) >= 1,
        )

    assert len(reports) == 1, "nothing is decoded after the cancel was seen"
    assert caught.value.processed_s == reports[0]
    assert caught.value.processed_s < audio.shape[0] / 16000 / 2


def test_batched_inference_gives_segments_in_file_time(loaded_model, tmp_path):
    path, audio = speech_with_pauses(tmp_path, repeats=3)
    duration = audio.shape[0] / 16000

    transcript = transcribe(path, loaded_model, TranscribeOptions(batch_size=4), window_s=20)

    assert transcript.segments
    assert transcript.run.decoding["batch_size"] == 4
    assert all(0 <= s.start <= s.end <= duration for s in transcript.segments)
    # A segment the random model writes into a chunk's padding, after the last speech,
    # overlaps no speech: the review suppresses those (outside_speech). Every other one
    # starts in speech, in file time.
    heard = [
        s
        for s in transcript.segments
        if any(r.start < s.end and s.start < r.end for r in transcript.speech)
    ]
    assert heard
    for segment in heard:
        assert inside(segment.start, transcript.speech, slack=0.05)


def test_without_vad_it_decodes_the_whole_file_and_reports_no_coverage(loaded_model, tone_wav):
    transcript = transcribe(tone_wav, loaded_model, TranscribeOptions(vad=False))

    assert transcript.duration_s == pytest.approx(3.0, abs=0.01)
    assert transcript.speech == ()
    assert transcript.metrics.vad_speech_coverage is None


def test_silence_gives_an_empty_transcript_not_an_error(loaded_model, tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(5 * 16000))

    transcript = transcribe(path, loaded_model, TranscribeOptions())

    assert transcript.segments == ()
    assert transcript.metrics.vad_speech_coverage == 0.0
    assert transcript.language == "unknown"


def test_a_given_language_is_used_and_recorded(loaded_model, jfk):
    transcript = transcribe(jfk, loaded_model, TranscribeOptions(language="ko"))

    assert transcript.language == "ko"
    assert transcript.run.decoding["language_used"] == "ko"


def test_a_file_that_is_not_media_raises_a_media_error(loaded_model, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio")

    with pytest.raises(MediaError, match="not an audio or video file"):
        transcribe(path, loaded_model)


def test_a_window_is_cut_at_the_late_pause_that_fills_its_last_whisper_chunk():
    from transcription.engine.windows import choose_cut

    sr = 16000
    # 290 s window: speech regions with pauses at ~262 s, ~271 s and ~281 s.
    regions = [
        {"start": 0, "end": 200 * sr},  # 200 s of speech
        {"start": 205 * sr, "end": 260 * sr},  # 255 s so far
        {"start": 264 * sr, "end": 269 * sr},  # 260 s
        {"start": 273 * sr, "end": 280 * sr},  # 267 s
        {"start": 282 * sr, "end": 290 * sr},  # 275 s, runs to the window's end
    ]

    cut = choose_cut(regions, 290 * sr, search=30 * sr)

    # Cutting after 267 s of speech leaves 27 s in its last 30 s chunk: the fullest option.
    assert cut == 281 * sr


def test_a_window_without_a_late_pause_is_cut_at_its_end():
    from transcription.engine.windows import choose_cut

    sr = 16000
    regions = [{"start": 0, "end": 10 * sr}, {"start": 11 * sr, "end": 300 * sr}]

    assert choose_cut(regions, 300 * sr, search=30 * sr) == 300 * sr
    assert choose_cut([], 300 * sr, search=30 * sr) == 300 * sr


def test_a_full_live_buffer_with_a_long_prompt_stays_within_whispers_token_limit(loaded_model):
    from transcription.engine import decode_buffer

    audio = (0.1 * np.sin(np.arange(30 * 16000) / 7)).astype(np.float32)
    prompt = "쿠버네티스 클러스터에서 vLLM 으로 서빙하는 구조를 설명합니다 " * 8

    decoded = decode_buffer(loaded_model, audio, prompt=prompt[-400:], hotwords="vLLM FastAPI")

    assert isinstance(decoded.words, tuple)
