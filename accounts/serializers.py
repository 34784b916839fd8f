"""What a caller may learn about its own key (GET /v1/keys/me): never the secret."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import APIKey, Scope


class KeySelfSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.name", read_only=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices),
        read_only=True,
        help_text="What the key may do: transcribe (jobs and their results), stream (the "
        "WebSocket), glossary (glossaries), admin (system endpoints).",
    )
    expires_at = serializers.DateTimeField(
        source="expiry_date", read_only=True, allow_null=True, help_text="Null: never."
    )

    class Meta:
        model = APIKey
        fields = ["prefix", "name", "owner", "scopes", "expires_at"]
        read_only_fields = fields
