"""The schema class of every view (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS).

Apart from scribe.schema because DRF reads DEFAULT_METADATA_CLASS (there) while its views
module loads, and drf_spectacular.openapi imports DRF's views: one module would import
itself half-loaded.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers

# What DRF's CharField refuses beyond its lengths, as patterns that read the same in
# ECMA-262 and Python: any NUL (ProhibitNullCharactersValidator) and, where it trims and
# refuses blanks, a value of whitespace only. The whitespace is what str.strip() removes,
# spelled out: ECMA's and JSON Schema tools' ``\s`` lacks \x1c-\x1f and adds \ufeff. A
# lookahead, not ``\s*\S``, which backtracks quadratically on long text.
STRIPPED = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK_NO_NUL = rf"^(?![{STRIPPED}]*$)[^\u0000]*$"


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with the text rules of request strings said as patterns,
    so a request the schema calls valid is one the serializers accept."""

    def _map_basic_serializer(self, serializer, direction):
        component = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return component
        properties = component.get("properties", {})
        for field in serializer.fields.values():
            schema = properties.get(field.field_name)
            if isinstance(field, serializers.ListField) and schema is not None:
                field, schema = field.child, schema.get("items")
            if schema is not None:
                _say_text_rules(field, schema)
        return component


def _say_text_rules(field: serializers.Field, schema: dict) -> None:
    """Add the pattern of a plain CharField (one with no format, pattern or choices).

    Here, after drf-spectacular has mapped the field, because a pattern it saw itself on a
    field that allows blanks would become ``oneOf: [pattern, blank]``, which "" matches
    twice and so fails.
    """
    plain_text = (
        isinstance(field, serializers.CharField)
        and schema.get("type") == "string"
        and not {"format", "pattern", "enum", "oneOf"} & schema.keys()
    )
    if plain_text:
        blank_refused = field.trim_whitespace and not field.allow_blank
        schema["pattern"] = NOT_BLANK_NO_NUL if blank_refused else NO_NUL
