"""Offering hotwords: which glossary terms a first pass heard, read the way the ear would."""

from __future__ import annotations

import pytest

from glossary.normalize import TermSpec
from glossary.offering import OFFER_THRESHOLD, TermOffer

TERMS = [
    TermSpec(canonical)
    for canonical in (
        "ECR", "PCM", "ASR", "PDFs", "429", "Alembic", "CTranslate2", "safetensors", "vLLM",
        "large-v3", "S3", "REST", "API", "FastAPI", "RAG", "int8", "EC2", "Docker", "A100",
        "Kubernetes", "Dagster", "float16",
    )
]  # fmt: skip


@pytest.fixture(scope="module")
def offer() -> TermOffer:
    return TermOffer(TERMS)


@pytest.mark.parametrize(
    ("heard", "term"),
    [
        # Spoken letters that rhyme (the E-set) or drop out.
        ("and pushes it to the DCR", "ECR"),
        ("sends BCM frames", "PCM"),
        ("to the SR worker", "ASR"),
        ("chunk is the DFS", "PDFs"),
        ("we deploy it with the LLM", "vLLM"),
        # A number said in words, across punctuation.
        ("retry my HTTP 400, 20, and back off", "429"),
        # A lost leading vowel, a hyphen inside the term.
        ("run the migration with Lambbic", "Alembic"),
        ("convert it with C-translate", "CTranslate2"),
        ("before exporting to half-attensors", "safetensors"),
    ],
)
def test_a_term_heard_as_something_like_it_is_offered(offer, heard, term):
    offered = {o.term: o for o in offer.offers(heard)}

    assert term in offered
    assert OFFER_THRESHOLD <= offered[term].score <= 1.0


def test_each_offer_says_what_it_was_found_in(offer):
    (found,) = [
        o for o in offer.offers("the gateway pushes it to the DCR, then") if o.term == "ECR"
    ]

    assert found.heard == "DCR"


def test_a_span_offers_the_one_term_it_sounds_most_like(offer):
    assert offer("the lane runs large V3 tonight") == ["large-v3"]
    assert set(offer("calls a rest API")) == {"REST", "API"}


@pytest.mark.parametrize(
    ("heard", "not_offered"),
    [
        # Function words alone are no term, however they sound.
        ("and that is the end of it", "S3"),
        ("we talked it to death", "EC2"),
        # A short term needs spoken letters or a number, not an ordinary word.
        ("we search the archive", "ECR"),
        ("an array of servers", "RAG"),
        # A term's digits are never compared with letters.
        ("we walked into the hall", "int8"),
        # Ordinary words that share no sound with the term.
        ("the data team moved the nightly job to another scheduler", "Dagster"),
        ("one hundred and a hundred", "A100"),
        # A contraction is one word: its "s" is no spoken S.
        ("and that's them with the model", "S3"),
        # A number beside letters unlike the term's is not the term ("frame that 16" was
        # read as float16 before this rule, where "sixteen kilohertz" was said).
        ("sends frames that 16 kilohertz", "float16"),
        ("frames at sixteen kilohertz", "float16"),
    ],
)
def test_near_misses_are_not_offered(offer, heard, not_offered):
    assert not_offered not in offer(heard)


@pytest.mark.parametrize(
    ("heard", "term"),
    [
        ("the model runs in float 16", "float16"),
        ("the model runs in flow 16", "float16"),
        ("the model runs in float sixteen", "float16"),
        ("chunk the CDF's first", "PDFs"),  # a possessive after spoken letters
    ],
)
def test_a_number_beside_the_terms_letters_is_offered(offer, heard, term):
    assert term in offer(heard)


def test_each_offer_says_where_it_stands(offer):
    heard = "retry my HTTP 400, 20, and back off"
    [found] = [o for o in offer.offers(heard) if o.term == "429"]

    assert heard[found.start : found.end] == found.heard == "400, 20"


def test_hangul_is_left_to_the_sound_alike_matcher(offer):
    assert offer("쿠버네티스에서 도커를 써") == []


def test_a_stricter_threshold_offers_less():
    heard = "run the migration with Lambbic and push to the DCR"

    assert set(TermOffer(TERMS)(heard)) >= {"Alembic", "ECR"}
    assert TermOffer(TERMS, threshold=0.95)(heard) == []


def test_an_operators_variant_is_a_spelling_to_hear_too():
    # Nothing in the spelling "k8s" says it is spoken "kates".
    assert TermOffer([TermSpec("k8s")])("deploy it on kates") == []
    assert TermOffer([TermSpec("k8s", ("kates",))])("deploy it on kates") == ["k8s"]


def test_no_terms_or_no_words_offer_nothing(offer):
    assert TermOffer([])("pushes it to the DCR") == []
    assert TermOffer([TermSpec("  ")])("pushes it to the DCR") == []
    assert offer("... , !") == []


def test_sub_and_superscript_digits_are_no_numbers_to_offer():
    offer = TermOffer([TermSpec("CO₂"), TermSpec("H₂O"), TermSpec("m²"), TermSpec("A100")])

    assert offer("ten m two of h two o, ٣ or ² later") == ["H₂O", "m²"]
    assert offer("the co two level") == ["CO₂"]
    assert offer("the co level ² ₂") == []
