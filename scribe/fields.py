"""Fields of JSON bodies that take only the JSON type their schema says.

DRF converts what it can: ``0``, ``"yes"`` and ``"off"`` are booleans to its BooleanField,
``0`` is the string ``"0"`` to its CharField, ``"5"`` and ``5.0`` are integers. /v1/schema
says ``boolean``, ``string`` and ``integer``, and a client checked against it sends those;
a body with a number where a string belongs is a bug in the client, answered with a 400
that names the field instead of being read as something the caller may not have meant.
``StrictModelSerializer`` maps model fields to these.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false (a JSON boolean)."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string (in double quotes)."}

    def run_validation(self, data: Any = empty) -> Any:
        # Before CharField's own, which reads str(data) to see whether it is blank.
        if data is not empty and data is not None and not isinstance(data, str):
            self.fail("invalid")
        return super().run_validation(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be a whole number (a JSON integer)."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        **{
            model_field: strict
            for model_field, field in serializers.ModelSerializer.serializer_field_mapping.items()
            for plain, strict in (
                (serializers.BooleanField, StrictBooleanField),
                (serializers.CharField, StrictCharField),
                (serializers.IntegerField, StrictIntegerField),
            )
            if field is plain
        },
    }
