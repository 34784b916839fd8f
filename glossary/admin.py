from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.html import format_html

from glossary.csv_io import import_terms, terms_to_csv
from glossary.models import Glossary, HallucinationPhrase, LLMAuditRecord, Rule, Term
from glossary.normalize import RuleSpec, compile_rule


class VariantsField(forms.CharField):
    """A list of variants typed one per line or separated by commas, not as JSON."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 30})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def to_python(self, value) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        text = super().to_python(value) or ""
        return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


class TermForm(forms.ModelForm):
    variants = VariantsField(
        required=False,
        help_text="Spoken or misrecognised forms, one per line or separated by commas.",
    )

    class Meta:
        model = Term
        fields = ("glossary", "canonical", "variants", "hotword", "priority")


class TermInline(admin.TabularInline):
    model = Term
    form = TermForm
    extra = 1


class CsvImportForm(forms.Form):
    glossary = forms.ModelChoiceField(queryset=Glossary.objects.all())
    file = forms.FileField(
        help_text="Columns: canonical,variants,hotword,priority (variants separated by |). "
        "A glossary column, as exported, is ignored: every row goes to the glossary above."
    )


@admin.register(Glossary)
class GlossaryAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "updated_at")
    list_filter = ("owner",)
    search_fields = ("name", "terms__canonical")
    inlines = [TermInline]
    actions = ["export_csv"]
    change_list_template = "admin/glossary/glossary/change_list.html"

    def get_urls(self):
        return [
            path(
                "import-csv/",
                self.admin_site.admin_view(self.import_csv),
                name="glossary_glossary_import_csv",
            ),
            *super().get_urls(),
        ]

    def import_csv(self, request):
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8")
                count = import_terms(form.cleaned_data["glossary"], text)
            except (UnicodeDecodeError, ValueError) as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"Imported {count} terms.", messages.SUCCESS)
                return redirect("admin:glossary_glossary_changelist")
        return render(
            request,
            "admin/glossary/glossary/import_csv.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "title": "Import glossary terms from CSV",
            },
        )

    @admin.action(description="Export the terms of the selected glossaries as CSV")
    def export_csv(self, request, queryset):
        terms = (
            Term.objects.filter(glossary__in=queryset)
            .select_related("glossary__owner")
            .order_by("glossary__name", "glossary", "-priority", "id")
        )
        response = HttpResponse(terms_to_csv(terms), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="glossary-terms.csv"'
        return response


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("order", "kind", "pattern", "replacement", "glossary", "enabled")
    list_display_links = ("pattern",)
    list_editable = ("order", "enabled")
    list_filter = ("enabled", "kind", "glossary")
    readonly_fields = ("sample_result",)
    fields = (
        "glossary",
        "order",
        "kind",
        "pattern",
        "replacement",
        "case_sensitive",
        "description",
        "sample_text",
        "sample_result",
        "enabled",
    )

    @admin.display(description="sample text after this rule")
    def sample_result(self, rule: Rule) -> str:
        if not rule.sample_text:
            return "Type sample text above and save (keep the rule disabled while trying)."
        try:
            result = compile_rule(
                RuleSpec(rule.kind, rule.pattern, rule.replacement, rule.case_sensitive)
            )(rule.sample_text)
        except re.error as exc:
            return f"The pattern is not valid: {exc}"
        return format_html("<pre>{}</pre>", result)


@admin.register(HallucinationPhrase)
class HallucinationPhraseAdmin(admin.ModelAdmin):
    list_display = ("text", "language", "enabled")
    list_filter = ("language", "enabled")
    list_editable = ("enabled",)


@admin.register(LLMAuditRecord)
class LLMAuditRecordAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "owner",
        "key_prefix",
        "job",
        "endpoint",
        "destination",
        "characters_sent",
        "outcome",
    )
    list_filter = ("owner", "created_at")
    readonly_fields = [f.name for f in LLMAuditRecord._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
