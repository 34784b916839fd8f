"""The live ``start`` message's options, checked before a session starts (the job options'
schema, live lane)."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from scribe.errors import problems_text
from transcription.serializers import options_parse

pytestmark = pytest.mark.django_db


def problems(options, owner) -> str:
    with pytest.raises(ValidationError) as refused:
        options_parse(options, owner=owner, lane="live")
    return problems_text(refused.value.detail)


@pytest.mark.parametrize("mode", ["none", "glossary", "rules"])
def test_a_live_session_may_choose_its_post_correction(mode, owner_key):
    options = options_parse(
        {"post_correction": {"mode": mode}}, owner=owner_key[0].owner, lane="live"
    )

    assert options.post_correction == mode
    assert options.stored()["post_correction"] == {"mode": mode}


def test_a_live_session_that_chooses_no_post_correction_keeps_the_rules(owner_key):
    assert options_parse({}, owner=owner_key[0].owner, lane="live").post_correction == "rules"


def test_llm_correction_is_refused_live_saying_why_and_what_is_allowed(owner_key):
    problem = problems({"post_correction": {"mode": "llm"}}, owner_key[0].owner)

    assert problem.startswith("post_correction: ")
    assert "hold finals back" in problem
    assert all(mode in problem for mode in ("none", "glossary", "rules"))


@pytest.mark.parametrize(
    "value", ["rules", {"mode": "loud"}, {"mode": "rules", "extra": 1}, {"mode": 3}]
)
def test_a_post_correction_that_is_not_a_mode_object_is_refused(value, owner_key):
    problem = problems({"post_correction": value}, owner_key[0].owner)

    assert problem.startswith("post_correction: ")
