"""Glossaries of domain terms, replacement rules, known hallucinations, LLM send audit."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models

from glossary.normalize import RuleSpec, compile_rule


class GlossaryQuerySet(models.QuerySet):
    def usable_by(self, owner) -> GlossaryQuerySet:
        """The glossaries ``owner`` (an Owner or its id) may use: its own. Every request,
        job and live session that names a glossary is checked through here."""
        return self.filter(owner=owner)


class Glossary(models.Model):
    """Named set of terms an owner wants spelled exactly ("vLLM", "Kubernetes")."""

    owner = models.ForeignKey("accounts.Owner", on_delete=models.CASCADE, related_name="glossaries")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GlossaryQuerySet.as_manager()

    class Meta:
        ordering = ["owner", "name"]
        verbose_name_plural = "glossaries"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="one_glossary_name_per_owner")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"


class Term(models.Model):
    glossary = models.ForeignKey(Glossary, on_delete=models.CASCADE, related_name="terms")
    canonical = models.CharField(max_length=100, help_text="The spelling to keep, e.g. vLLM.")
    variants = models.JSONField(
        default=list, blank=True, help_text="Spoken or misrecognised forms, e.g. 브이엘엘엠."
    )
    hotword = models.BooleanField(default=True, help_text="Bias the decoder towards it.")
    priority = models.IntegerField(default=0, help_text="Higher first when the prompt is full.")

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["glossary", "canonical"], name="one_canonical_per_glossary"
            )
        ]

    def __str__(self) -> str:
        return self.canonical


class Rule(models.Model):
    """An ordered text replacement, global or for one glossary."""

    class Kind(models.TextChoices):
        LITERAL = "literal", "literal text"
        REGEX = "regex", "regular expression"
        ACRONYM = "acronym", "acronym casing (whole word, any case → this case)"

    glossary = models.ForeignKey(
        Glossary,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="rules",
        help_text="Empty: applies to every request.",
    )
    order = models.IntegerField(default=0)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LITERAL)
    pattern = models.CharField(max_length=500)
    replacement = models.CharField(max_length=500, blank=True)
    case_sensitive = models.BooleanField(default=False)
    enabled = models.BooleanField(default=False, help_text="Try it on sample text first.")
    sample_text = models.TextField(blank=True, help_text="Text to try the rule on in the admin.")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.pattern} → {self.replacement or self.pattern}"

    def clean(self) -> None:
        if self.kind != self.Kind.REGEX:
            return
        try:
            pattern = re.compile(self.pattern)
        except re.error as exc:
            raise ValidationError({"pattern": f"Not a valid regular expression: {exc}"}) from None
        try:
            compile_rule(RuleSpec(self.kind, self.pattern, self.replacement))
        except re.error as exc:
            raise ValidationError(
                {
                    "replacement": f"Not a valid replacement for this pattern: {exc}. The "
                    f"pattern has {pattern.groups} group(s), each referred to by its number "
                    "(\\1); a backslash itself is written \\\\."
                }
            ) from None


class HallucinationPhrase(models.Model):
    """Text Whisper is known to invent on silence or music (subtitle credits and the like)."""

    text = models.CharField(max_length=200, unique=True)
    language = models.CharField(max_length=8, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["language", "text"]

    def __str__(self) -> str:
        return self.text


class LLMAuditRecord(models.Model):
    """One send of text to a correction model: who, where, how much, and what came of it."""

    key_prefix = models.CharField(max_length=16, blank=True)
    owner = models.ForeignKey("accounts.Owner", on_delete=models.SET_NULL, null=True, blank=True)
    job = models.ForeignKey("transcription.Job", on_delete=models.SET_NULL, null=True, blank=True)
    endpoint = models.CharField(max_length=300)
    # Where the text went: the URL finally reached, or the one refused (a redirect's).
    destination = models.CharField(max_length=300, blank=True)
    characters_sent = models.PositiveIntegerField()
    outcome = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.characters_sent} chars: {self.outcome}"
