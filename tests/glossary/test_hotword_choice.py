"""Hotwords that fit the audio: each window is offered the glossary terms its first pass
heard or nearly heard, not every term (which makes Whisper write terms nobody said)."""

from __future__ import annotations

import pytest

from glossary.bias import HotwordChoice, glossary_bias
from glossary.hearings import Edit
from glossary.normalize import TermSpec
from transcription.engine import Segment, TranscribeOptions, TranscriptionCancelled, transcribe
from transcription.engine.decode_policy import lost_words

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


class Recording:
    """A selector that offers fixed hotwords and remembers what each window's passes heard."""

    def __init__(self, survey: str | None) -> None:
        self.surveys = survey
        self.heard: list[tuple[str, str | None]] = []
        self.asked = False  # whether alternatives were proposed yet

    def survey(self, heard: str) -> str | None:
        return self.surveys

    def __call__(self, heard: str, surveyed: str | None = None) -> str | None:
        self.heard.append((heard, surveyed))
        return "Kubernetes"

    def alternatives(self, texts, *, first_pass: str, survey: str | None):
        """Each segment's first word, proposed as Kubernetes."""
        self.asked = True
        proposed = []
        for text in texts:
            first = text.split()[0] if text.split() else ""
            start = text.find(first)
            alternatives = [Edit(start, start + len(first), "Kubernetes", "Kubernetes", "sound")]
            proposed.append((text, alternatives if first else []))
        return proposed


@pytest.mark.shared_audio
def test_each_window_is_decoded_with_the_hotwords_chosen_from_its_two_hearings(loaded_model, jfk):
    select = Recording(survey="Kubernetes gRPC")

    transcript = transcribe(
        jfk, loaded_model, TranscribeOptions(hotwords="never used"), select_hotwords=select
    )

    assert len(select.heard) == transcript.metrics.windows == 1
    [(first_pass, surveyed)] = select.heard
    assert first_pass.strip() and surveyed is not None and surveyed.strip()
    decoding = transcript.run.decoding
    assert decoding["hotwords_per_window"] == ["Kubernetes"]
    [hearing] = decoding["hearings_per_window"]
    assert hearing == {
        "start": 0.0,
        "end": pytest.approx(transcript.duration_s, abs=0.05),
        "first_pass": first_pass,
        "survey": surveyed,
        "checked": hearing["checked"],
    }
    # Each segment's proposed alternative was scored against the segment's audio.
    segments = [s for s in transcript.segments if s.text.split()]
    assert [(c["start"], c["end"], c["text"]) for c in hearing["checked"]] == [
        (s.start, s.end, s.text) for s in segments
    ]
    for check, segment in zip(hearing["checked"], segments, strict=True):
        [alternative] = check["alternatives"]
        assert alternative["heard"] == segment.text.split()[0]
        assert alternative["text"] == alternative["term"] == "Kubernetes"
        assert isinstance(alternative["gain"], float) and alternative["gain"] != 0.0


@pytest.mark.shared_audio
def test_without_survey_hotwords_a_window_is_heard_once_before_its_decode(loaded_model, jfk):
    select = Recording(survey=None)

    transcript = transcribe(jfk, loaded_model, select_hotwords=select)

    [(first_pass, surveyed)] = select.heard
    assert first_pass.strip() and surveyed is None
    assert transcript.run.decoding["hearings_per_window"][0]["survey"] is None


def test_the_survey_offers_every_hotword_term_and_the_requests_own_within_the_budget():
    picker = HotwordChoice(
        terms=[*TERMS, TermSpec("FastAPI", hotword=False)],
        extra_hotwords=["vLLM"],
        count_tokens=words,
    )

    assert set(picker.survey("nothing like a term").split()) == {
        "vLLM", "Kubernetes", "gRPC", "PostgreSQL", "Dagster", "Airflow"
    }  # fmt: skip
    only_fastapi = HotwordChoice(terms=[TermSpec("FastAPI", hotword=False)], count_tokens=words)
    assert only_fastapi.survey("the fast API") is None


def test_a_glossary_larger_than_the_budget_is_surveyed_where_the_first_pass_was_closest():
    heard = "we moved the job from air flow to the dax scheduler"

    # Airflow was heard; "dax" is too far to offer Dagster, but nearest of the rest.
    assert choice()(heard) == "Airflow"
    assert choice(budget=2).survey(heard) == "Airflow Dagster"
    assert choice(budget=3).survey("air flow and the post office") == "Airflow PostgreSQL gRPC"
    assert choice(budget=1, extra_hotwords=["vLLM"]).survey(heard) == "vLLM"


def test_a_term_the_survey_wrote_is_offered_where_the_first_pass_heard_a_little_like_it():
    picker = HotwordChoice(terms=[*TERMS, TermSpec("Redis")], count_tokens=words)
    heard = "the gateway speaks to the old disk"

    assert picker(heard) is None  # "disk" is too far from Redis to offer it on its own
    # The survey's spelling is read as the glossary reads text: "redis" is Redis.
    assert picker(heard, "the gateway speaks to the old redis") == "Redis"
    # Dagster was written where nothing in the first pass was like it: not offered.
    assert picker(heard, "the gateway speaks to the old Dagster") is None


def test_beside_per_window_hotwords_the_prompt_lists_only_terms_kept_out_of_hotwords():
    listed = glossary_bias(
        terms=[*TERMS, TermSpec("FastAPI", hotword=False), TermSpec("Pydantic", hotword=False)],
        count_tokens=words,
        hotwords_per_window=True,
    )
    every_term_hot = glossary_bias(terms=TERMS, count_tokens=words, hotwords_per_window=True)

    assert listed.initial_prompt == "FastAPI, Pydantic."
    assert every_term_hot.initial_prompt is None  # every term is offered where heard


def test_a_latin_span_offers_one_term_and_hangul_is_read_by_sound():
    picker = HotwordChoice(
        terms=[TermSpec("PCM"), TermSpec("BGE-M3"), TermSpec("Kubernetes")], count_tokens=words
    )

    # "BCM frame" once offered BGE-M3 beside PCM, and the decode wrote BGE-M3 for it.
    assert picker.likely("the web socket, screen and BCM frame that 16 kilovert") == ["PCM"]
    assert picker.likely("쿠버네티스에서 돌려요") == ["Kubernetes"]


def test_a_term_kept_out_of_hotwords_is_not_offered_where_heard():
    picker = HotwordChoice(
        terms=[TermSpec("FastAPI", hotword=False), TermSpec("Redis")], count_tokens=words
    )

    assert picker("the fast API service touches Redis") == "Redis"
    assert picker("the fast API service", "the FastAPI service") is None


def _segment(text: str) -> Segment:
    return Segment(0, 0.0, 1.0, text, -0.2, 0.01, 1.2, 0.0)


def test_a_biased_decode_that_lost_much_of_what_the_first_pass_heard_is_redone():
    heard = " Login goes through Keycloak with OIDC, and the API checks the JWT on every request."

    assert lost_words([_segment(" JWT on every request")], heard)
    assert not lost_words([_segment(heard)], heard)
    assert not lost_words(
        [_segment(" Login goes through key cloak with"), _segment(" OIDC and the API checks")],
        heard,
    )
    # A short first pass says too little to judge by.
    assert not lost_words([_segment(" Okay.")], " Okay, thank you all.")


@pytest.mark.shared_audio
def test_a_biased_windows_segments_reach_on_segment_once_each(loaded_model, jfk):
    shown: list[Segment] = []

    transcript = transcribe(
        jfk, loaded_model, select_hotwords=Recording(survey="Kubernetes"), on_segment=shown.append
    )

    assert [s.text for s in shown] == [s.text for s in transcript.segments]


@pytest.mark.shared_audio
def test_a_job_can_be_cancelled_while_the_audio_is_asked(loaded_model, jfk):
    select, shown = Recording(survey=None), []

    with pytest.raises(TranscriptionCancelled):
        transcribe(
            jfk,
            loaded_model,
            select_hotwords=select,
            on_segment=shown.append,
            should_cancel=lambda: select.asked,
        )

    assert shown == []  # stopped among the checks, before the window's segments went out


@pytest.mark.shared_audio
def test_offered_hotwords_a_pass_does_not_condition_on_its_own_previous_text(
    loaded_model, jfk, monkeypatch
):
    # Hotwords and a pass's own text both in the prompt made tiny.en loop ("Weaviate.
    # Weaviate. …") and skip speech across a 6-minute window (docs/benchmarks.md).
    calls: list[tuple[str | None, bool]] = []
    real = loaded_model.whisper.transcribe

    def recording(*args, **kwargs):
        calls.append((kwargs.get("hotwords"), kwargs["condition_on_previous_text"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(loaded_model.whisper, "transcribe", recording)

    transcribe(jfk, loaded_model, select_hotwords=Recording(survey="Kubernetes gRPC"))

    # The first pass (unbiased) as asked; the survey and the biased decode without.
    assert calls == [(None, True), ("Kubernetes gRPC", False), ("Kubernetes", False)]
