"""Templates, keyword categories and notes in the admin. A template's form refuses an
invalid JSON Schema or a prompt that never uses the transcript, saying why; "Try" makes
notes of pasted text with the template as it is saved."""

from __future__ import annotations

import functools
import json

from django import forms
from django.conf import settings
from django.contrib import admin
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html
from jsonschema import Draft202012Validator, SchemaError

from glossary.services import llm_audit
from notes import making
from notes.models import KeywordCategory, Note, Template
from notes.prompting import PromptError, prompt_check
from notes.structured import NotesError, structured_answer
from scribe.llm import llm_config


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ("slug", "name", "description", "language", "schema", "prompt", "enabled")
        widgets = {"prompt": forms.Textarea(attrs={"rows": 16, "cols": 100})}

    def clean_schema(self):
        schema = self.cleaned_data["schema"]
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise forms.ValidationError(
                'The schema must be a JSON object describing an object ("type": "object"): '
                "notes are one JSON object."
            )
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "the top level"
            raise forms.ValidationError(
                f"Not a valid JSON Schema (draft 2020-12) at {where}: {exc.message}"
            ) from None
        return schema

    def clean_prompt(self):
        prompt = self.cleaned_data["prompt"]
        try:
            prompt_check(prompt)
        except PromptError as exc:
            raise forms.ValidationError(str(exc)) from None
        return prompt


class TryForm(forms.Form):
    transcript = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100}),
        help_text="Pasted text, one line per segment; sent to the configured LLM.",
    )
    language = forms.CharField(max_length=10, required=False, help_text="e.g. ko or en.")


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ("slug", "name", "version", "enabled", "updated_at", "try_link")
    list_filter = ("enabled",)
    readonly_fields = ("version",)

    def get_urls(self):
        return [
            path(
                "<int:template_id>/try/",
                self.admin_site.admin_view(self.try_template),
                name="notes_template_try",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Try")
    def try_link(self, template: Template) -> str:
        url = reverse("admin:notes_template_try", args=[template.pk])
        return format_html('<a href="{}">Try on text</a>', url)

    def try_template(self, request, template_id: int):
        template = get_object_or_404(Template, pk=template_id)
        form = TryForm(request.POST or None)
        result = error = None
        if request.method == "POST" and form.is_valid():
            try:
                result = self._tried(template, form.cleaned_data)
            except NotesError as exc:
                error = f"{exc.code}: {exc.message}"
        return render(
            request,
            "admin/notes/template/try.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Try {template}",
                "form": form,
                "result": result,
                "error": error,
            },
        )

    @staticmethod
    def _tried(template: Template, data: dict) -> str:
        config = llm_config()
        if config is None:
            raise NotesError("llm_not_configured", "Set SCRIBE_LLM_BASE_URL to try templates.")
        lines = tuple(
            making.Line(0.0, 0.0, line.strip())
            for line in data["transcript"].splitlines()
            if line.strip()
        )
        transcript = making.Transcript(lines, data["language"] or None, None, "pasted text")
        ask = functools.partial(
            structured_answer,
            config=config,
            audit=llm_audit(key_prefix="admin"),
            attempts=settings.SCRIBE_LLM_NOTES_ATTEMPTS,
        )
        made = making.Template(
            template.slug, template.name, template.language, template.schema, template.prompt
        )
        answer = making.notes_make(
            made, transcript, ask=ask, budget=making.Budget(settings.SCRIBE_LLM_CONTEXT_TOKENS)
        )
        return json.dumps(
            {"model": answer.model, "attempts": answer.attempts, "data": answer.data},
            ensure_ascii=False,
            indent=2,
        )


@admin.register(KeywordCategory)
class KeywordCategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "order")
    list_editable = ("order",)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    """What was made, by which template version and model, and what it cost; the notes'
    text is the job owner's, shown only through the API."""

    list_display = ("job", "kind", "template_slug", "status", "model", "attempts", "created_at")
    list_filter = ("status", "kind", "template_slug")
    fields = (
        "job",
        "kind",
        "template_slug",
        "template_version",
        "status",
        "error_code",
        "model",
        "attempts",
        "usage",
        "prompt_hash",
        "parameters",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
