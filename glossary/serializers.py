from __future__ import annotations

from django.db import transaction
from rest_framework import serializers

from glossary.models import Glossary, Term
from glossary.review import MODES
from scribe.exceptions import ScribeError
from scribe.fields import StrictCharField, StrictIntegerField, StrictModelSerializer


class GlossaryNameTakenError(ScribeError):
    code = "name_taken"
    http_status = 409


class GlossaryTermsRepeatedError(ScribeError):
    """A conflict, like a taken name: each canonical spelling is one row of the glossary,
    and OpenAPI cannot say "unique by canonical", so a 400 would refuse a body its schema
    calls valid."""

    code = "terms_repeated"
    http_status = 409


class GlossaryNotFoundError(ScribeError):
    code = "not_found"
    http_status = 404


# PostgreSQL's integer column, on every database (SQLite's would take 64 bits).
PRIORITY_RANGE = {"min_value": -(2**31), "max_value": 2**31 - 1}


class TermSerializer(StrictModelSerializer):
    variants = serializers.ListField(
        child=StrictCharField(max_length=100), required=False, max_length=50
    )

    class Meta:
        model = Term
        fields = ["canonical", "variants", "hotword", "priority"]
        extra_kwargs = {"priority": PRIORITY_RANGE}

    def validate(self, attrs: dict) -> dict:
        # A PATCH is partial down to the nested terms, so DRF skips their required fields;
        # but the terms given replace the glossary's, and each one must be whole.
        missing = [
            name for name, field in self.fields.items() if field.required and name not in attrs
        ]
        if missing:
            raise serializers.ValidationError(
                {name: [serializers.Field.default_error_messages["required"]] for name in missing},
                code="required",
            )
        return attrs


class GlossarySerializer(StrictModelSerializer):
    terms = TermSerializer(many=True, required=False)

    class Meta:
        model = Glossary
        fields = ["id", "name", "description", "terms", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_name(self, value: str) -> str:
        owner = self.context["owner"]
        clash = Glossary.objects.usable_by(owner).filter(name=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise GlossaryNameTakenError(
                f"You already have a glossary named {value!r}: change that one "
                "(PUT /v1/glossaries/{id}) or choose another name."
            )
        return value

    def validate_terms(self, value: list[dict]) -> list[dict]:
        names = [t["canonical"] for t in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise GlossaryTermsRepeatedError(
                f"Terms listed twice: {', '.join(repeated)}. List each canonical spelling "
                "once, with all its spoken forms in its variants."
            )
        return value

    @transaction.atomic
    def create(self, validated_data):
        terms = validated_data.pop("terms", [])
        glossary = Glossary.objects.create(owner=self.context["owner"], **validated_data)
        Term.objects.bulk_create(Term(glossary=glossary, **t) for t in terms)
        return glossary

    @transaction.atomic
    def update(self, instance, validated_data):
        terms = validated_data.pop("terms", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save()
        if terms is not None:  # the list given replaces the terms
            instance.terms.all().delete()
            Term.objects.bulk_create(Term(glossary=instance, **t) for t in terms)
        return instance


class TextCorrectSerializer(serializers.Serializer):
    text = StrictCharField(max_length=20000, trim_whitespace=False)
    language = StrictCharField(required=False, allow_blank=True, default="")
    glossary_id = StrictIntegerField(required=False, allow_null=True)
    mode = serializers.ChoiceField(choices=MODES, default="rules")

    def validate_glossary_id(self, value: int | None) -> int | None:
        if (
            value is not None
            and not Glossary.objects.usable_by(self.context["owner"]).filter(pk=value).exists()
        ):
            raise GlossaryNotFoundError(
                f"No glossary of yours has the id {value}: list yours with GET /v1/glossaries."
            )
        return value
