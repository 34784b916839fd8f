"""Every function of the glossary that takes user text is total: over arbitrary Unicode
(tests/glossary/unicode_text.py) none raises, and each keeps the invariants it promises.

A 10,000-character text goes through each of them in a few seconds at most: a
backtracking regex or a quadratic loop takes minutes there.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from glossary.bias import HotwordChoice, glossary_bias
from glossary.flags import (
    DEFAULT_HALLUCINATIONS,
    hallucination_matcher,
    is_repetition_loop,
    segment_flags,
)
from glossary.hearings import Reconciler
from glossary.metrics import cer, normalise, term_occurrences, term_score, wer
from glossary.normalize import RuleSpec, TermSpec, apply_glossary, apply_rules, compile_rule
from glossary.offering import TermOffer
from glossary.review import post_process
from glossary.soundalike import (
    SoundAlikeMatcher,
    is_digits,
    metaphone,
    number_words,
    romanisations,
    romanise,
    spoken_forms,
)
from glossary.soundalike.forms import MAX_FORMS
from glossary.soundalike.romanise import as_hangul, loan_key
from scribe.llm import mask, unmask
from tests.glossary.unicode_text import (
    ADVERSARIAL_TERMS,
    FEW,
    PROPERTY,
    long_text,
    replacement,
    rules,
    term_text,
    terms,
    text,
    timed,
)

HANGUL_SYLLABLE = re.compile(r"[\uac00-\ud7a3]")
ALL_ADVERSARIAL = [TermSpec(t, (t.upper(), t + "s")) for t in ADVERSARIAL_TERMS]


# --- sound-alike: romanisation, numbers, spoken forms -----------------------------------


@PROPERTY
@given(text)
def test_romanisation_reads_any_text_and_leaves_no_hangul_syllable(said):
    spellings = romanisations(said)
    assert spellings and all(isinstance(s, str) for s in spellings)
    assert romanise(said) == spellings[0]
    assert not HANGUL_SYLLABLE.search(romanise(said))


@PROPERTY
@given(text)
def test_sound_keys_take_any_text(said):
    assert re.fullmatch("A?[PTKSLMN0-9]*", loan_key(said))
    assert isinstance(metaphone(said), str)
    assert isinstance(as_hangul(said), str)


@PROPERTY
@given(text)
@example("₂")
@example("١٢")
@example("①")
def test_only_ascii_digits_are_said_as_numbers(written):
    if is_digits(written):
        english, korean = number_words(written)
        assert english and korean
        assert all(said.isascii() for said in english)
    else:
        with pytest.raises(ValueError, match="ASCII digits"):
            number_words(written)


@PROPERTY
@given(term_text)
@example("." * 30)
@example("C" + "+" * 40)
@example("a.b-c" * 20)
def test_spoken_forms_are_few_quick_and_ascii(canonical):
    forms = timed(spoken_forms, canonical)
    assert len(forms) <= MAX_FORMS
    for form in forms:
        assert re.fullmatch("[a-z0-9]+", form.letters), form
        assert form.words >= 0


# --- sound-alike: the matcher ------------------------------------------------------------


@pytest.fixture(scope="module")
def adversarial_matcher() -> SoundAlikeMatcher:
    return timed(SoundAlikeMatcher, ALL_ADVERSARIAL)


def check_matches(matcher: SoundAlikeMatcher, said: str) -> None:
    found = matcher.matches(said)
    canonical = {t.canonical for t in matcher.terms}
    for match in found:
        assert 0 <= match.start < match.end <= len(said)
        assert said[match.start : match.end] == match.heard
        assert match.term in canonical
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    corrected = matcher.apply(said)
    assert isinstance(corrected, str)
    if not re.search(r"\w", said):
        assert corrected == said, "a text with no word has no sound-alike"
    assert all(c.term in canonical for c in matcher.candidates(said))


@PROPERTY
@given(text)
@example("ÉÉ test")
@example("ＡＢ")
@example("İİ")
@example("ǄǄ")
def test_the_matcher_takes_any_text_with_adversarial_terms(adversarial_matcher, said):
    check_matches(adversarial_matcher, said)


@PROPERTY
@given(terms, text)
def test_the_matcher_takes_any_glossary_and_any_text(glossary, said):
    check_matches(SoundAlikeMatcher(glossary), said)


@PROPERTY
@given(text)
def test_without_terms_the_matcher_changes_nothing(said):
    assert SoundAlikeMatcher([]).apply(said) == said


@PROPERTY
@given(term_text)
def test_a_term_alone_comes_back_as_itself(canonical):
    assert SoundAlikeMatcher([TermSpec(canonical)]).apply(canonical) == canonical


@FEW
@given(long_text)
def test_the_matcher_reads_ten_thousand_characters_quickly(adversarial_matcher, said):
    assert isinstance(timed(adversarial_matcher.apply, said), str)


# --- variants and rules ------------------------------------------------------------------


@PROPERTY
@given(terms, text)
def test_variants_take_any_glossary_and_any_text(glossary, said):
    corrected = apply_glossary(said, glossary)
    assert isinstance(corrected, str)
    if not glossary:
        assert corrected == said


@PROPERTY
@given(rules, text)
@example([RuleSpec("regex", r"\bapi\b", r"\1GB")], "the api")
@example([RuleSpec("acronym", "gpu", r"G\PU")], "a gpu")
def test_a_rule_that_compiles_takes_any_text(chosen, said):
    compiled = []
    for rule in chosen:
        try:
            compiled.append(compile_rule(rule))
        except re.error:
            continue  # refused on save (Rule.clean), never applied
    for rule in compiled:
        said = rule(said)
        assert isinstance(said, str)


@PROPERTY
@given(st.sampled_from(["literal", "acronym"]), term_text, replacement)
@example("acronym", "gpu", r"\q")
def test_literal_and_acronym_rules_put_their_replacement_in_as_written(kind, pattern, written):
    pattern = pattern.strip()
    assume(pattern)
    expected = written or pattern if kind == "acronym" else written
    assert compile_rule(RuleSpec(kind, pattern, written))(pattern) == expected


@FEW
@given(long_text)
def test_variants_and_rules_read_ten_thousand_characters_quickly(said):
    timed(apply_glossary, said, ALL_ADVERSARIAL)
    timed(apply_rules, said, [RuleSpec("acronym", "GPU"), RuleSpec("regex", r"(\d+)\s*기가", "")])


# --- flags -------------------------------------------------------------------------------

# An operator's phrases: "…" stands for anything, once or many times; the last one
# matches every text, so it comes after those a long text must be read against.
PHRASES = [
    *DEFAULT_HALLUCINATIONS["ko"],
    *DEFAULT_HALLUCINATIONS["en"],
    "a…a…a…a…b",
    "…하…",
    "…",
]


@PROPERTY
@given(st.lists(term_text, max_size=4), text)
@example(["Thanks…for…watching"], "Thanks for watching")
def test_hallucination_phrases_take_any_text(phrases, said):
    found = hallucination_matcher(phrases)(said)
    assert found is None or found in phrases


@PROPERTY
@given(text)
def test_flags_take_any_segment_text(said):
    segment = {"start": 0.0, "end": 1.0, "text": said}
    flags = segment_flags(
        segment, speech=[(0.0, 1.0)], hallucination=hallucination_matcher(PHRASES)
    )
    assert set(flags) <= {"repetition", "known_hallucination", "outside_speech"}
    assert isinstance(is_repetition_loop(said), bool)


@FEW
@given(long_text)
@example("a" * 10_000)
def test_flags_read_ten_thousand_characters_quickly(said):
    timed(hallucination_matcher(PHRASES), said)
    timed(is_repetition_loop, said)


# --- normalisers and measures ------------------------------------------------------------


@PROPERTY
@given(text)
def test_the_metrics_normaliser_is_idempotent(said):
    once = normalise(said)
    assert normalise(once) == once
    assert once == " ".join(once.split())


@PROPERTY
@given(text, text, st.lists(term_text, max_size=3))
def test_measures_take_any_texts(reference, hypothesis, known):
    assert wer(reference, hypothesis) >= 0
    assert cer(reference, hypothesis) >= 0
    assert wer(reference, reference) == 0
    score = term_score(reference, hypothesis, said=None, known=known)
    assert set(score.recalled) <= set(score.said)
    assert all(term_occurrences(hypothesis, t) >= 0 for t in known)


@FEW
@given(long_text)
def test_measures_read_ten_thousand_characters_quickly(said):
    timed(wer, said, said[::-1])
    timed(cer, said[:3000], said[:3000][::-1])


@PROPERTY
@given(text)
@example("[EMAIL1] a@b.co")
@example("[PHONE1] 010-1234-5678")
def test_masking_for_the_llm_gives_every_character_back(said):
    masked, mapping = mask(said)
    assert unmask(masked, mapping) == said


@FEW
@given(long_text)
@example("a" * 10_000)
def test_masking_reads_ten_thousand_characters_quickly(said):
    timed(mask, said)


# --- the offering search, the hearings and the review ------------------------------------


@PROPERTY
@given(terms, text, text)
def test_offers_and_hearings_take_any_text(glossary, heard, decoded):
    offer = TermOffer(glossary)
    for found in offer.offers(heard):
        assert heard[found.start : found.end] == found.heard
    assert set(offer.closeness(heard)) == {t.canonical for t in glossary if t.canonical.strip()}
    reconciler = Reconciler(glossary)
    for edit in reconciler.proposals(decoded, first_pass=heard, survey=heard[::-1]):
        assert 0 <= edit.start <= edit.end <= len(decoded)
    assert isinstance(reconciler.apply(decoded, first_pass=heard, survey=decoded), str)


def tokens(text: str) -> int:
    """A tokenizer's count, roughly: the bias only needs one that grows with the text."""
    return len(text.encode()) // 3 + 1


@PROPERTY
@given(terms, st.lists(text, max_size=3), text, st.one_of(st.none(), text))
def test_hotword_choice_takes_any_hearing(glossary, segments, heard, surveyed):
    choice = HotwordChoice(terms=glossary, extra_hotwords=["vLLM"], count_tokens=tokens)
    for hotwords in (choice.survey(heard), choice(heard, surveyed)):
        assert hotwords is None or isinstance(hotwords, str)
    for spelled, edits in choice.alternatives(segments, first_pass=heard, survey=surveyed):
        assert all(0 <= e.start <= e.end <= len(spelled) for e in edits)
    bias = glossary_bias(terms=glossary, extra_hotwords=[heard], count_tokens=tokens)
    assert set(bias.kept).isdisjoint(bias.dropped)


@PROPERTY
@given(
    terms,
    rules,
    st.lists(text, min_size=1, max_size=3),
    text,
    st.sampled_from(["none", "glossary", "rules", "llm"]),
)
def test_the_review_takes_any_segments_and_hearings(glossary, chosen, texts, heard, mode):
    valid = []
    for rule in chosen:
        try:
            compile_rule(rule)
        except re.error:
            continue  # refused on save (Rule.clean), never applied
        valid.append(rule)
    result = {
        "segments": [
            {"id": i, "start": float(i), "end": i + 1.0, "text": said, "words": None}
            for i, said in enumerate(texts)
        ],
        "run": {"decoding": {"hearings_per_window": [
            {"start": 0.0, "end": 30.0, "first_pass": heard, "survey": heard[::-1]},
        ]}},
    }  # fmt: skip
    processed = post_process(result, mode=mode, terms=glossary, rules=valid, phrases=PHRASES)
    shown = processed["segments"] + processed["suppressed_segments"]
    assert sorted(s["raw_text"] for s in shown) == sorted(texts)
    assert isinstance(processed["text"], str)
