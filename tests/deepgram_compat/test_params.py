"""Deepgram's query parameters as scribe reads them (deepgram_compat/params.py)."""

from __future__ import annotations

import pytest

from deepgram_compat import params


@pytest.mark.parametrize("name", ["nova-3", "nova-2", "base", "enhanced", "whisper-large", None])
def test_any_model_name_runs_on_the_lanes_model(name):
    assert params.model(name, lane="batch") == "batch"
    assert params.model(name, lane="realtime") == "realtime"


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("en-US", "en"),
        ("ko-KR", "ko"),
        ("en", "en"),
        ("EN-gb", "en"),
        ("zh-Hant-TW", "zh"),
        ("pt_BR", "pt"),
        ("multi", None),
        ("", None),
        (None, None),
        ("auto", None),
    ],
)
def test_region_tags_are_their_base_language_and_multi_is_detection(tag, code):
    assert params.language(tag) == code


def test_keyterms_and_keywords_become_hotwords_without_intensifiers():
    hotwords = params.hotwords(
        ["vLLM", "customer service", " ", "vLLM"], ["Kubernetes:2", "PyTorch:-5.5", "k8s:x"]
    )
    assert hotwords == ("vLLM", "customer service", "Kubernetes", "PyTorch", "k8s:x")
    assert params.hotwords() == ()


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [("true", False, True), ("FALSE", True, False), (None, True, True), ("", False, False)],
)
def test_flags(value, default, expected):
    assert params.flag(value, default=default) is expected


def test_a_flag_that_is_not_a_boolean_says_what_to_send():
    with pytest.raises(ValueError, match="use true or false"):
        params.flag("maybe")


def test_unhandled_parameters_are_listed_once_sorted():
    names = ["model", "numerals", "filler_words", "numerals", "made_up", "language"]
    assert params.ignored(names, handled=("model", "language")) == [
        "filler_words",
        "made_up",
        "numerals",
    ]
    assert {"summarize", "topics", "mip_opt_out", "tag"} <= params.IGNORED
