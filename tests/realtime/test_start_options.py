"""The live ``start`` message's options, checked before a session starts."""

from __future__ import annotations

import pytest

from realtime.consumers import validate_start


@pytest.mark.parametrize("mode", ["none", "glossary", "rules"])
def test_a_live_session_may_choose_its_post_correction(mode):
    clean, problem = validate_start({"post_correction": {"mode": mode}})

    assert problem is None
    assert clean["post_correction"] == {"mode": mode}


def test_a_live_session_that_chooses_no_post_correction_keeps_the_rules():
    clean, problem = validate_start({})

    assert problem is None
    assert clean["post_correction"] == {"mode": "rules"}


def test_llm_correction_is_refused_live_saying_why_and_what_is_allowed():
    clean, problem = validate_start({"post_correction": {"mode": "llm"}})

    assert clean == {}
    assert problem is not None
    assert "hold finals back" in problem
    assert all(f"'{mode}'" in problem for mode in ("none", "glossary", "rules"))


@pytest.mark.parametrize(
    "value", ["rules", {"mode": "loud"}, {"mode": "rules", "extra": 1}, {"mode": 3}]
)
def test_a_post_correction_that_is_not_a_mode_object_is_refused(value):
    clean, problem = validate_start({"post_correction": value})

    assert clean == {}
    assert problem is not None and "post_correction must be" in problem
