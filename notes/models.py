"""Notes: what an LLM makes of a finished transcript (docs/notes.md).

A ``Template`` is a JSON Schema plus a prompt, edited by operators in the admin; a ``Note``
is one template's (or the keywords') answer for one job, a row of its own beside the
job's stored result, which it never rewrites. ``KeywordCategory`` is the operator's list
of categories keywords are sorted into.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Template(models.Model):
    """A kind of notes: the JSON Schema their data must fit and the prompt that asks for it.

    ``version`` increases on every change, and each note records the version that made it.
    """

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    language = models.CharField(
        max_length=10,
        blank=True,
        help_text="The language the notes are written in; blank: the transcript's.",
    )
    schema = models.JSONField(help_text="The JSON Schema (draft 2020-12) of the notes' data.")
    prompt = models.TextField(
        help_text="A sandboxed Jinja template; it must use {{ transcript }}. Also: "
        "{{ language }}, {{ language_name }}, {{ notes_language_name }}, {{ duration_min }}, "
        "{{ source_name }}, {{ template_name }}."
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug} v{self.version})"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            stored = Template.objects.filter(pk=self.pk).values(*self.VERSIONED).first()
            if stored and any(stored[name] != getattr(self, name) for name in self.VERSIONED):
                self.version = (
                    Template.objects.filter(pk=self.pk).values_list("version", flat=True)[0] + 1
                )
        super().save(*args, **kwargs)

    VERSIONED = ("slug", "name", "description", "language", "schema", "prompt")


class KeywordCategory(models.Model):
    """A category keywords are sorted into (person, organisation, technology, …)."""

    name = models.SlugField(max_length=40, unique=True)
    description = models.CharField(max_length=200, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = "keyword categories"

    def __str__(self) -> str:
        return self.name


class NoteQuerySet(models.QuerySet):
    def pending(self) -> NoteQuerySet:
        return self.filter(status=Note.Status.PENDING)

    def runnable(self, *, now) -> NoteQuerySet:
        """Pending notes whose job has its transcript and that no worker holds now."""
        return (
            self.pending()
            .filter(job__status="completed", job__erased_at__isnull=True)
            .filter(models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=now))
        )


class Note(models.Model):
    """One template's notes (or the keywords) for one job."""

    class Kind(models.TextChoices):
        NOTES = "notes"
        KEYWORDS = "keywords"

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"

    job = models.ForeignKey("transcription.Job", on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NOTES)
    # The template's slug ("" for keywords): kept when the template is deleted.
    template_slug = models.CharField(max_length=50, blank=True)
    template_version = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    data = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    usage = models.JSONField(default=dict, blank=True)
    # sha256 of the prompt template and schema that made the data, as sent (no transcript).
    prompt_hash = models.CharField(max_length=64, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When its message last went to the notes queue (None: not yet; its job still runs).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A worker holds a pending note until then; past it, the minute sweep sends it again.
    lease_until = models.DateTimeField(null=True, blank=True)

    objects = NoteQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind", "template_slug"], name="one_note_per_job_and_template"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id}: {self.status}"

    @property
    def name(self) -> str:
        return self.template_slug or self.kind

    def claim(self, *, lease_until) -> bool:
        """Take this pending note to run it; False if it is not pending or another worker
        holds it."""
        now = timezone.now()
        taken = (
            Note.objects.runnable(now=now)
            .filter(pk=self.pk)
            .update(lease_until=lease_until, started_at=now)
        )
        if taken:
            self.refresh_from_db()
        return bool(taken)

    def finish(self, **changes) -> bool:
        """Record the end (completed or failed) of a pending note; False if it already
        ended (or was erased meanwhile)."""
        changes.setdefault("finished_at", timezone.now())
        changes["lease_until"] = None
        done = Note.objects.filter(pk=self.pk, status=Note.Status.PENDING).update(**changes)
        if done:
            for name, value in changes.items():
                setattr(self, name, value)
        return bool(done)
