"""Hotwords that fit the audio: each window is offered the glossary terms its first pass
heard or nearly heard, not every term (which makes Whisper write terms nobody said)."""

from __future__ import annotations

import pytest

from glossary.normalize import TermSpec
from glossary.services import HotwordChoice
from transcription.engine import TranscribeOptions, transcribe

TERMS = [
    TermSpec("Kubernetes", ("쿠버네티스",)),
    TermSpec("gRPC"),
    TermSpec("PostgreSQL"),
    TermSpec("Dagster"),
    TermSpec("Airflow"),
]


def words(text: str) -> int:
    return len(text.split())


def choice(**overrides) -> HotwordChoice:
    return HotwordChoice(terms=TERMS, count_tokens=words, **overrides)


def test_a_window_is_offered_the_terms_it_said_or_nearly_said_and_no_others():
    offered = choice()("we moved the qber needs cluster and the CRPC gateway to postgresql")

    assert offered is not None
    assert set(offered.split()) == {"Kubernetes", "gRPC", "PostgreSQL"}


def test_a_window_that_says_no_term_is_offered_none():
    assert choice()("the data team moved the nightly job to another scheduler") is None


def test_a_variant_counts_as_heard():
    assert choice()("쿠버네티스 클러스터를 올렸습니다") == "Kubernetes"


def test_the_requests_own_hotwords_are_always_offered_first_within_the_budget():
    picker = choice(extra_hotwords=["FastAPI"], budget=2)

    offered = picker("airflow and dagster and postgresql")

    assert offered is not None and offered.split()[0] == "FastAPI"
    assert words(offered) <= 2


@pytest.mark.shared_audio
def test_each_window_is_decoded_with_the_hotwords_chosen_from_its_first_pass(loaded_model, jfk):
    heard: list[str] = []

    def select(text: str) -> str | None:
        heard.append(text)
        return "Kubernetes"

    transcript = transcribe(
        jfk, loaded_model, TranscribeOptions(hotwords="never used"), select_hotwords=select
    )

    assert len(heard) == transcript.metrics.windows == 1
    assert transcript.run.decoding["hotwords_per_window"] == ["Kubernetes"]


def test_beside_per_window_hotwords_the_prompt_lists_only_terms_kept_out_of_hotwords():
    listed = HotwordChoice(
        terms=[*TERMS, TermSpec("FastAPI", hotword=False), TermSpec("Pydantic", hotword=False)],
        count_tokens=words,
    )

    assert listed.prompt() == "FastAPI, Pydantic."
    assert choice().prompt() is None  # every term is offered where heard, none listed
