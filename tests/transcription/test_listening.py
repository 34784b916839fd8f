"""The model as a judge of spellings: which of two texts a clip of speech supports
(transcription.engine.listening), on real speech with the real tiny.en."""

from __future__ import annotations

import pytest

from tests.conftest import shared_clip
from transcription.engine.audio import decode_all
from transcription.engine.listening import Listener

pytestmark = [pytest.mark.real_model, pytest.mark.shared_audio]

SAID = (
    "And so my fellow Americans, ask not what your country can do for you,"
    " ask what you can do for your country."
)


@pytest.fixture(scope="module")
def clip(tiny_en):
    return Listener(tiny_en, "en").clip(decode_all(shared_clip("jfk.flac")))


@pytest.mark.parametrize(
    "misheard",
    [
        SAID.replace("your country can", "your county can"),
        SAID.replace("fellow Americans", "fellow American cans"),
        SAID.replace("ask not", "Ansible"),
    ],
)
def test_the_audio_favours_what_was_said_over_a_near_spelling(clip, misheard):
    assert clip.gain(misheard, SAID) > 0
    assert clip.gain(SAID, misheard) == pytest.approx(-clip.gain(misheard, SAID))


def test_offering_a_spelling_as_the_prompt_does_not_make_a_wrong_one_win(clip):
    misheard = SAID.replace("your country can", "your county can")

    assert clip.gain(SAID, misheard, prompt="county") < 0
