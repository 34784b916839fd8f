"""Live captions on the real tiny.en model: as accurate as the batch lane, nothing
invented in silence. The session is stepped once per second of audio, as a worker keeping
up in real time would, so the figures do not depend on this machine's speed."""

from __future__ import annotations

import numpy as np
import pytest

from glossary.metrics import wer
from realtime.live_types import TimedWord, heard_words
from realtime.session import StreamingSession
from tests.conftest import SHARED_AUDIO
from tests.realmodel import LIVE_REFERENCE, live_source
from transcription.engine import TranscribeOptions, decode_buffers, speech_regions, transcribe
from transcription.engine.audio import SAMPLE_RATE_HZ, decode_all
from transcription.engine.streaming import BufferRequest

pytestmark = [pytest.mark.real_model, pytest.mark.shared_audio]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    if not (SHARED_AUDIO / "multilingual.mp3").is_file():
        pytest.skip("../shared/audio is absent")
    return live_source(tmp_path_factory.mktemp("live") / "live.wav")


def live_session(model) -> StreamingSession:
    def heard(audio: np.ndarray, prompt: str) -> list[TimedWord] | None:
        decoded = decode_buffers(model, [BufferRequest(audio, prompt=prompt, language="en")])[0]
        return heard_words(decoded)

    return StreamingSession(heard, speech_regions)


def stream(session: StreamingSession, audio: np.ndarray) -> list[str]:
    finals = []
    for start in range(0, audio.shape[0], SAMPLE_RATE_HZ):
        session.insert_audio(audio[start : start + SAMPLE_RATE_HZ])
        finals += [f.text for f in session.process().finals]
    finals += [f.text for f in session.finish().finals]
    return finals


def test_live_captions_are_within_two_points_of_the_batch_lane(tiny_en, source):
    audio = decode_all(source)

    live = " ".join(stream(live_session(tiny_en), audio))
    batch = transcribe(source, tiny_en, TranscribeOptions(language="en", beam_size=5)).text

    live_wer, batch_wer = wer(LIVE_REFERENCE, live), wer(LIVE_REFERENCE, batch)
    # Before the live lane was reworked the gap was 8 points.
    assert live_wer <= batch_wer + 0.02, f"live {live_wer:.3f} vs batch {batch_wer:.3f}: {live}"


def test_nothing_is_captioned_in_silence_and_trailing_noise(tiny_en):
    rng = np.random.default_rng(7)
    speech = decode_all(SHARED_AUDIO / "jfk.flac")
    quiet = (rng.standard_normal(8 * SAMPLE_RATE_HZ) * 0.002).astype(np.float32)

    alone = " ".join(stream(live_session(tiny_en), speech))
    padded = " ".join(stream(live_session(tiny_en), np.concatenate([quiet, speech, quiet])))

    # Eight seconds of noise on each side add no word to what the speech alone gives (a
    # context shifted by the lead-in may change one: "ask" / "asked").
    assert len(padded.split()) <= len(alone.split()), f"{padded!r} vs {alone!r}"
    assert wer(alone, padded) <= 0.05, f"{padded!r} vs {alone!r}"
    reference = (
        "And so my fellow Americans, ask not what your country can do for you, "
        "ask what you can do for your country."
    )
    assert wer(reference, padded) <= 0.15, padded
