"""Request strings' patterns in /v1/schema say what DRF's CharField accepts."""

from __future__ import annotations

import re
import sys

import pytest
from rest_framework import serializers

from scribe.openapi import NO_NUL, NOT_BLANK_NO_NUL

EVERY_CHARACTER = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def accepted(field: serializers.CharField, value: str) -> bool:
    try:
        field.run_validation(value)
    except serializers.ValidationError:
        return False
    return True


def test_the_not_blank_pattern_matches_exactly_what_a_trimming_char_field_accepts():
    field = serializers.CharField()
    pattern = re.compile(NOT_BLANK_NO_NUL)

    differ = [
        hex(ord(c))
        for c in EVERY_CHARACTER
        if bool(pattern.search(c * 3)) != accepted(field, c * 3)
    ]

    assert differ == []


@pytest.mark.parametrize("value", ["", "a", " a ", "a\u0000", "\u0000", "\n", "x" * 20000])
def test_the_no_nul_pattern_matches_what_a_blank_allowing_field_accepts(value):
    field = serializers.CharField(allow_blank=True, trim_whitespace=False)

    assert bool(re.search(NO_NUL, value)) == accepted(field, value)
