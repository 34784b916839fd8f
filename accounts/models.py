"""Who calls scribe: owners (a service or a team) and their hashed API keys."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


class Owner(models.Model):
    """A calling service or team. Jobs belong to an owner; keys act for one."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Scope(models.TextChoices):
    TRANSCRIBE = "transcribe", "transcribe (jobs)"
    STREAM = "stream", "stream (WebSocket)"
    GLOSSARY = "glossary", "glossary (manage glossaries)"
    ADMIN = "admin", "admin (system endpoints)"


def validate_scopes(scopes: list[str]) -> list[str]:
    """Return the scopes sorted and deduplicated; refuse unknown ones and an empty list.

    The one rule for every way a key is made: the admin form, the services, the CLI.
    """
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationError(
            f"Unknown scope(s): {', '.join(unknown)}. "
            f"Use one or more of: {', '.join(Scope.values)}."
        )
    if not scopes:
        raise ValidationError(f"A key needs at least one scope: {', '.join(Scope.values)}.")
    return sorted(set(scopes))


def default_scopes() -> list[str]:
    return [Scope.TRANSCRIBE]


class APIKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("owner")


class APIKey(AbstractAPIKey):
    """A key is stored as a visible prefix and a SHA-512 hash; the secret is shown once."""

    owner = models.ForeignKey(Owner, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(default=default_scopes)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_to"
    )

    objects = APIKeyManager()  # type: ignore[misc,assignment]

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class KeyAuditEvent(models.Model):
    """Who did what with keys, and the requests that were turned away.

    Key events (created, rotated, revoked) are one row each. Refused requests are counted,
    not logged one by one: one row per why, key prefix, client address and minute, whose
    ``count`` grows (``accounts/audit.py``, which also bounds how many such rows an
    address can add); ``created_at`` is the first request of the row, ``last_seen_at``
    the latest, ``route`` and ``reason`` those of the first.
    """

    class Action(models.TextChoices):
        CREATED = "created"
        ROTATED = "rotated"
        REVOKED = "revoked"
        DENIED = "denied"

    action = models.CharField(max_length=10, choices=Action.choices, db_index=True)
    key_prefix = models.CharField(max_length=16, blank=True, db_index=True)
    owner = models.ForeignKey(Owner, on_delete=models.SET_NULL, null=True, blank=True)
    route = models.CharField(max_length=300, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    count = models.PositiveIntegerField(default=1, help_text="Requests this row stands for.")
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    # A refused request's aggregate: "why|prefix|address|minute"; empty for key events.
    bucket = models.CharField(max_length=160, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} {self.key_prefix or '(no key)'} {self.route}"
