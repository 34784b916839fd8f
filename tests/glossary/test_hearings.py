"""A window's biased decode reconciled with its two quick hearings (glossary.hearings).

The texts are what tiny.en wrote for espeak-ng's reading of the term sentences: the first
pass (greedy, unbiased), the survey (greedy, offered every term) and the biased decode, as
the glossary stage (which runs first) leaves it: "VLLM" is vLLM, "celery" Celery.
"""

from __future__ import annotations

import pytest

from glossary.bias import HotwordChoice
from glossary.hearings import Edit, Reconciler, listened
from glossary.normalize import TermSpec
from glossary.review import post_process
from transcription.engine.hearing import CheckedAlternative, Hearing

TERMS = [
    TermSpec(t)
    for t in [
        *("vLLM", "Kubernetes", "gRPC", "PostgreSQL", "Redis", "CTranslate2", "float16"),
        *("A100", "large-v3", "Celery", "RabbitMQ", "Alembic", "FastAPI", "API", "JSON"),
        *("JWT", "PDFs", "BGE-M3", "Qdrant", "RAG", "Jupyter", "SDK", "HTTP", "429"),
    ]
]


@pytest.fixture(scope="module")
def reconciler() -> Reconciler:
    return Reconciler(TERMS)


def test_a_term_the_survey_wrote_replaces_a_term_the_decode_wrote_once_too_often(reconciler):
    # Kubernetes was offered once (for "Cuba neat") and the decode wrote it twice.
    decoded = " We deploy vLLM on Kubernetes and the gateway speak to PostgreSQL Kubernetes"
    first_pass = (
        " We deploy the LLM on Cuba neat and the gateway speak to post the SQL and the disk."
    )
    survey = " We deploy vLLM on Kubernetes and the gateway speak to postgreSQL and Redis"

    fixed = reconciler.apply(decoded, first_pass=first_pass, survey=survey)

    assert fixed.endswith("to PostgreSQL and Redis")
    assert fixed.count("Kubernetes") == 1
    [edit] = reconciler.edits(decoded, first_pass=first_pass, survey=survey)
    assert (edit.term, edit.reason) == ("Redis", "survey")


@pytest.mark.parametrize(
    ("decoded", "first_pass", "survey", "fixed"),
    [
        pytest.param(
            " the gateway speak CRPC to PostgreSQL Kubernetes",
            " the gateway on Cuba neat speak CRPC to post the SQL and the disk.",
            " the gateway speak CRPC to post the SQL and Redis",
            # PostgreSQL (offered for "post the SQL") stands for "post the SQL and" and
            # stays; Kubernetes, written once more than offered, stands for Redis.
            " the gateway speak CRPC to PostgreSQL Redis",
            id="a supported term beside the replaced words stays",
        ),
        pytest.param(
            " The match lane runs large-v3 with CTranslate2 in float 69-8100",
            " The match lane runs large V3 with C-translate to inflow 6981 100",
            " The match lane runs large v3 with CTranslate2 inflate16 A100",
            # "in float 69" is matched to the survey's "inflate16" and kept.
            " The match lane runs large-v3 with CTranslate2 in float 69-A100",
            id="only the words that stand for the term are replaced",
        ),
        pytest.param(
            " restart the Celery workers and grab it, thank you!",
            " restart the salary workers and ravie them queue.",
            " restart the celery workers and rabbitMQ",
            " restart the Celery workers and RabbitMQ, thank you!",
            id="the term replaces the words that sound most like it",
        ),
    ],
)
def test_a_term_the_survey_wrote_replaces_only_what_stands_for_it(
    reconciler, decoded, first_pass, survey, fixed
):
    assert reconciler.apply(decoded, first_pass=first_pass, survey=survey) == fixed


def test_a_term_the_decode_wrote_where_a_hearing_supports_it_stays(reconciler):
    # The survey wrote "fast API" (API is a term), the first pass was offered FastAPI.
    decoded = " The FastAPI service returns JSON and checks every JWT before it touches Redis"
    first_pass = (
        " The fast API service returns JSON and checks every JW team before it touches release."
    )
    survey = " The fast API service returns JSON and checks every JW team before it touches Redis"

    assert reconciler.edits(decoded, first_pass=first_pass, survey=survey) == []


def test_a_term_the_decode_wrote_is_not_taken_out_when_the_survey_wrote_no_term_there(
    reconciler,
):
    decoded = " The SDK retry much, HTTP 429 and back soft with Jupyter"
    first_pass = " The SDK retry my HTTP 400, 20-ion, and back soft with Jitter."
    survey = " The SDK retry large HTTP 420 HIN and back soft with Jitter"

    assert reconciler.edits(decoded, first_pass=first_pass, survey=survey) == []


def test_a_term_the_survey_wrote_where_the_first_pass_heard_nothing_like_it_stays_out():
    decoded = " the gateway speaks to the old disk"
    reconciler = Reconciler([TermSpec("Redis"), TermSpec("Dagster")])

    assert reconciler.edits(decoded, first_pass=decoded, survey=" to the old Dagster") == []
    [edit] = reconciler.edits(decoded, first_pass=decoded, survey=" to the old Redis")
    assert edit.term == "Redis"


def test_words_that_differ_without_a_term_are_left_to_the_decode(reconciler):
    decoded = " The CI pipeline builds the Docker image and pushes it to the ECR registry."
    survey = " The CI pipeline builds the Docker image and pushes it to the ECR rareges tree"

    assert reconciler.edits(decoded, first_pass=decoded, survey=survey) == []


def test_a_term_offered_from_the_first_pass_returns_where_the_decode_heard_it_otherwise(
    reconciler,
):
    decoded = " The RAG service chunk CDF, embeds them with BGE-M3 and search as Qdrant."
    first_pass = (
        " The RAG service chunk is the DFS, and that's them with BGM-3 and search as Q-brand."
    )

    fixed = reconciler.apply(decoded, first_pass=first_pass, survey=None)

    assert fixed == " The RAG service chunk PDFs, embeds them with BGE-M3 and search as Qdrant."
    [edit] = reconciler.edits(decoded, first_pass=first_pass, survey=None)
    assert (edit.term, edit.reason) == ("PDFs", "first_pass")


def test_a_decode_that_wrote_what_the_first_pass_wrote_keeps_it(reconciler):
    # Redis was offered for "reads"; the biased decode heard "reads" again: it was said.
    text = " Grandfather reads the Prometheus metrics while Kafka carries the events."

    assert reconciler.edits(text, first_pass=text, survey=None) == []


def test_a_term_offered_in_one_place_is_not_put_back_in_another(reconciler):
    first_pass = " the data team moved the DFS to the old disk array"
    decoded = " the data team moved the files to the old CDF array"

    # PDFs was offered for "DFS" (now "files"); "CDF" stands for "disk".
    assert reconciler.edits(decoded, first_pass=first_pass, survey=None) == []
    moved_here = " the data team moved the CDF to the old disk array"
    [edit] = reconciler.edits(moved_here, first_pass=first_pass, survey=None)
    assert moved_here[edit.start : edit.end] == "CDF" and edit.term == "PDFs"


def test_nothing_changes_without_terms():
    assert Reconciler([]).edits("the disk", first_pass="the disk", survey="Redis") == []


def _result(segments, hearings):
    return {
        "language": "en",
        "segments": [
            {"id": i, "start": start, "end": end, "text": text, **extra}
            for i, (start, end, text, extra) in enumerate(segments)
        ],
        "run": {"decoding": {"hearings_per_window": hearings}},
    }


def _correct(result):
    return post_process(result, mode="glossary", terms=TERMS, rules=[], phrases=[])


def test_the_hearings_stage_edits_a_windows_segments_and_records_the_change():
    result = _result(
        [
            (0.0, 3.0, " We deploy on Kubernetes", {}),
            (3.0, 6.0, " and the gateway speaks to PostgreSQL Kubernetes.", {}),
            (31.0, 33.0, " The same words, another window: PostgreSQL Kubernetes.", {}),
        ],
        [
            {
                "start": 0.0,
                "end": 30.0,
                "first_pass": " We deploy on Cuba neat and the gateway speaks to post the SQL and"
                " the disk.",
                "survey": " We deploy on Kubernetes and the gateway speaks to postgreSQL and Redis",
            }
        ],
    )

    processed = _correct(result)

    texts = [s["text"] for s in processed["segments"]]
    assert texts[0] == " We deploy on Kubernetes"
    assert texts[1] == " and the gateway speaks to PostgreSQL and Redis."
    assert texts[2].endswith("PostgreSQL Kubernetes.")  # its window was not heard twice
    [stage] = [s for s in processed["post_correction"]["stages"] if s["name"] == "hearings"]
    [change] = stage["changes"]
    assert change["segment"] == 1 and change["after"].endswith("PostgreSQL and Redis.")
    assert processed["segments"][1]["raw_text"].endswith("PostgreSQL Kubernetes.")


def test_an_edit_across_two_segments_is_not_made():
    result = _result(
        [
            (0.0, 3.0, " to PostgreSQL Kuber", {}),
            (3.0, 6.0, "netes", {}),
        ],
        [
            {
                "start": 0.0,
                "end": 30.0,
                "first_pass": " to post the SQL and the disk",
                "survey": " to postgreSQL and Redis",
            }
        ],
    )

    processed = _correct(result)

    assert [s["text"] for s in processed["segments"]] == [" to PostgreSQL Kuber", "netes"]


def test_a_channels_hearings_reach_only_that_speakers_segments():
    hearing = {
        "start": 0.0,
        "end": 30.0,
        "first_pass": " to post the SQL and the disk",
        "survey": " to postgreSQL and Redis",
    }
    result = _result(
        [
            (0.0, 3.0, " to PostgreSQL Kubernetes", {"speaker": "CHANNEL_0"}),
            (0.5, 3.0, " to PostgreSQL Kubernetes", {"speaker": "CHANNEL_1"}),
        ],
        [{**hearing, "speaker": "CHANNEL_1"}],
    )

    processed = _correct(result)

    assert [s["text"] for s in processed["segments"]] == [
        " to PostgreSQL Kubernetes",
        " to PostgreSQL and Redis",
    ]


def test_text_without_hearings_has_no_hearings_stage():
    processed = _correct(_result([(0.0, 3.0, " to PostgreSQL Kubernetes", {})], []))

    assert [s["name"] for s in processed["post_correction"]["stages"]] == [
        "glossary",
        "soundalike",
    ]


# --- what the audio judged (transcription.engine.listening) -----------------------------


def _alternative(text: str, heard: str, term: str, gain: float, reason: str = "sound") -> dict:
    start = text.index(heard)
    return {
        "start": start,
        "end": start + len(heard),
        "heard": heard,
        "text": term,
        "term": term,
        "reason": reason,
        "gain": gain,
    }


def _verdicts(checked: list[dict]) -> list[Edit]:
    """What the hearings stage takes of a segment's alternatives as the run record keeps
    them (JSON)."""
    return listened([CheckedAlternative.from_dict(a) for a in checked])


def test_the_audio_decides_best_gain_first_and_no_two_overlap():
    text = " run on Cuba neat with the gateway in float 69-8100"
    checked = [
        _alternative(text, "float 69-8100", "float16", 9.5),
        _alternative(text, "float 69", "float16", 1.9),  # overlaps a better one
        _alternative(text, "Cuba neat", "Kubernetes", 9.2),
        _alternative(text, "gateway", "Qdrant", -11.0),  # the audio says no
        _alternative(text, "run", "Rust", 0.0),  # no better than as written
    ]

    assert [(e.text, e.start) for e in _verdicts(checked)] == [
        ("Kubernetes", text.index("Cuba")),
        ("float16", text.index("float 69-8100")),
    ]


def test_a_span_with_the_terms_very_letters_is_taken_whatever_its_gain():
    text = " and Alert manager pages the web socket"
    checked = [
        _alternative(text, "Alert manager pages", "Alertmanager", 3.0),
        _alternative(text, "Alert manager", "Alertmanager", -0.7),
        _alternative(text, "web socket", "WebSocket", -4.8),
    ]

    assert [e.text for e in _verdicts(checked)] == ["Alertmanager", "WebSocket"]
    assert _verdicts(checked)[0].end == text.index(" pages")


def test_the_audio_is_asked_where_a_hearing_wrote_a_term_the_decode_lacks(reconciler):
    decoded = " The tickets are in Europe and the builds use Celery"
    survey = " The ticket is in RAG and the builds use Celery"

    proposed = reconciler.proposals(decoded, first_pass=" The tickets are in Europe", survey=survey)

    [edit] = [e for e in proposed if e.reason == "survey"]
    assert (decoded[edit.start : edit.end], edit.text, edit.term) == ("Europe", "RAG", "RAG")


def test_the_term_alone_is_proposed_in_place_of_a_few_words_where_a_hearing_wrote_it():
    reconciler = Reconciler([TermSpec("Grafana"), TermSpec("Kafka")])
    decoded = " Kafka Grandfather reads the metrics"

    proposed = reconciler.proposals(
        decoded, first_pass=decoded, survey=" Kafka Grafana reads the metrics"
    )

    near = {decoded[e.start : e.end] for e in proposed if e.reason == "near"}
    assert all(e.text == "Grafana" for e in proposed if e.reason == "near")
    # Runs of up to three words from one word before the place to one after; none takes
    # out the Kafka the decode wrote.
    assert near == {"Grandfather", "Grandfather reads", "reads"}


def test_no_proposal_takes_out_a_term_the_decode_wrote_for_another(reconciler):
    decoded = " the JSON goes to Redis now"
    survey = " the Jupyter goes to Redis now"

    proposed = reconciler.proposals(
        decoded, first_pass=" the Jason goes to the disk", survey=survey
    )

    assert not [e for e in proposed if e.reason == "survey"]


def test_a_term_neither_hearing_wrote_may_be_taken_out_one_at_a_time(reconciler):
    first_pass = " the match lane runs and the disk"
    one = reconciler.proposals(
        " the Celery lane runs and the disk", first_pass=first_pass, survey=None
    )
    two = reconciler.proposals(
        " the Celery Redis runs and the disk", first_pass=first_pass, survey=None
    )

    [edit] = [e for e in one if e.reason == "unheard"]
    assert (edit.text, edit.term) == ("match", "Celery")
    assert not [e for e in two if e.reason == "unheard"]


def test_a_window_is_proposed_per_segment_in_the_glossary_spelling():
    choice = HotwordChoice(terms=TERMS, count_tokens=lambda s: len(s.split()))

    proposed = choice.alternatives(
        [" We run vllm on Cuba neat,", " and the gateway speaks CRPC to fast API."],
        first_pass=" We run the LLM on Cuba neat and the gateway speaks CRPC to fast API.",
        survey=None,
    )

    [(first, first_alternatives), (second, second_alternatives)] = proposed
    assert first == " We run vLLM on Cuba neat,"  # the glossary stage's spelling
    offered = {(text[a.start : a.end], a.term) for text, alts in proposed for a in alts}
    assert ("Cuba neat", "Kubernetes") in offered
    assert ("CRPC", "gRPC") in offered
    assert ("fast API", "FastAPI") in offered  # spelled with the letters of a term
    # vLLM is written in the first segment: no sound-alike of it is proposed there; but
    # neither hearing wrote it, so the first pass's words are, in its place.
    assert {(first[a.start : a.end], a.text, a.reason) for a in first_alternatives} == {
        ("Cuba neat", "Kubernetes", "sound"),
        ("vLLM", "the LLM", "unheard"),
    }
    assert second.endswith("to fast API.") and second_alternatives


def test_a_sound_alike_is_not_proposed_over_a_written_term_nor_for_one():
    choice = HotwordChoice(terms=TERMS, count_tokens=lambda s: len(s.split()))

    proposed = choice.alternatives(
        [" send Jason API", " the JSON Jason file"], first_pass="", survey=None
    )

    heard = [[(text[a.start : a.end], a.term) for a in alts] for text, alts in proposed]
    # "Jason API" would take the written API out for JSON; where JSON is written already,
    # "Jason" is not proposed as another.
    assert ("Jason", "JSON") in heard[0]
    assert ("Jason API", "JSON") not in heard[0]
    assert heard[1] == []


def test_a_checked_window_takes_the_audios_verdicts_and_no_unheard_sound_alike():
    first = " We run on Cuba neat"
    second = " and the gateway speaks CRPC"
    result = _result(
        [
            (0.0, 3.0, first, {}),
            (3.0, 6.0, second, {}),
            (31.0, 33.0, " Another window speaks CRPC.", {}),
        ],
        [
            {
                "start": 0.0,
                "end": 30.0,
                "first_pass": first + second,
                "survey": None,
                "checked": [
                    {
                        "start": 0.0,
                        "end": 3.0,
                        "text": first,
                        "alternatives": [_alternative(first, "Cuba neat", "Kubernetes", 9.2)],
                    },
                    {
                        "start": 3.0,
                        "end": 6.0,
                        "text": second,
                        "alternatives": [_alternative(second, "CRPC", "gRPC", -3.0)],
                    },
                ],
            }
        ],
    )

    processed = _correct(result)

    texts = [s["text"] for s in processed["segments"]]
    # Taken where the audio favoured it; "CRPC" left where it did not, though its
    # spelling alone clears the sound-alike threshold (the third segment, not checked).
    assert texts == [
        " We run on Kubernetes",
        " and the gateway speaks CRPC",
        " Another window speaks gRPC.",
    ]
    stages = {s["name"]: s["changes"] for s in processed["post_correction"]["stages"]}
    assert [c["segment"] for c in stages["hearings"]] == [0]
    assert [c["segment"] for c in stages["soundalike"]] == [2]


def test_a_verdict_on_text_that_has_since_changed_is_not_applied():
    text = " We run on Cuba neat"
    stale = " We ran on Cuba neat"
    result = _result(
        [(0.0, 3.0, text, {})],
        [
            {
                "start": 0.0,
                "end": 30.0,
                "first_pass": text,
                "survey": None,
                "checked": [
                    {
                        "start": 0.0,
                        "end": 3.0,
                        "text": stale,
                        "alternatives": [_alternative(stale, "Cuba neat", "Kubernetes", 9.2)],
                    }
                ],
            }
        ],
    )

    assert _correct(result)["segments"][0]["text"] == text


def test_a_hearing_keeps_the_run_records_json_keys_in_order():
    text = " We run on Cuba neat"
    stored = {
        "start": 0.0,
        "end": 30.0,
        "first_pass": text,
        "survey": None,
        "biased_decode": " We run",
        "checked": [
            {
                "start": 0.0,
                "end": 3.0,
                "text": text,
                "alternatives": [_alternative(text, "Cuba neat", "Kubernetes", 9.2)],
            }
        ],
        "speaker": "CHANNEL_1",
    }
    plain = {"start": 0.0, "end": 30.0, "first_pass": text, "survey": " a", "checked": []}

    for record in (stored, plain):
        assert list(Hearing.from_dict(record).to_dict().items()) == list(record.items())


def test_a_hearing_stored_before_the_audio_was_asked_reads_as_unchecked():
    stored = {"start": 0.0, "end": 30.0, "first_pass": " the disk", "survey": " Redis"}

    hearing = Hearing.from_dict(stored)

    assert hearing.checked is None and hearing.speaker is None
    assert hearing.to_dict() == stored
