from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as UnscopedAPIKey

from accounts import services
from accounts.models import APIKey, KeyAuditEvent, Owner, Scope, validate_scopes

# drf-api-key registers an admin for its own concrete key model, which scribe never uses:
# the index would list a second, always empty "API keys" beside the scoped ones.
if admin.site.is_registered(UnscopedAPIKey):
    admin.site.unregister(UnscopedAPIKey)


@admin.register(Owner)
class OwnerAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


class APIKeyForm(forms.ModelForm):
    """Scopes as checkboxes of the known scopes, so a typo cannot grant nothing silently."""

    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the key may do.",
    )

    class Meta:
        model = APIKey
        fields = ("name", "owner", "scopes", "expiry_date", "revoked")

    def clean_scopes(self) -> list[str]:
        return validate_scopes(self.cleaned_data["scopes"])


@admin.register(APIKey)
class ScopedAPIKeyAdmin(APIKeyModelAdmin):
    form = APIKeyForm
    list_display = (  # type: ignore[assignment]
        "prefix",
        "name",
        "owner",
        "usable",
        "created",
        "expiry_date",
        "scope_list",
        "last_used_at",
    )
    list_filter = (*APIKeyModelAdmin.list_filter, "revoked", "owner")  # type: ignore[assignment]
    actions = ["rotate", "revoke"]

    def get_readonly_fields(self, request, obj=None):
        # The base admin replaces readonly_fields outright; written by the service, not people.
        return (*super().get_readonly_fields(request, obj), "last_used_at", "rotated_from")

    @admin.display(description="scopes")
    def scope_list(self, key: APIKey) -> str:
        return ", ".join(key.scopes)  # not the JSON list's repr, which wraps in the column

    @admin.display(boolean=True, description="usable")
    def usable(self, key: APIKey) -> bool:
        return not key.revoked and not key.has_expired

    def save_model(self, request, obj, form=None, change=False):
        created = not obj.pk
        super().save_model(request, obj, form, change)  # shows the new secret once
        if created:
            KeyAuditEvent.objects.create(
                action=KeyAuditEvent.Action.CREATED,
                key_prefix=obj.prefix,
                owner=obj.owner,
                reason=f"in the admin by {request.user}; scopes: {', '.join(obj.scopes)}",
            )

    @admin.action(description="Rotate: issue a new key, old one expires in 24 h")
    def rotate(self, request, queryset):
        for key in queryset.filter(revoked=False):
            new, secret = services.api_key_rotate(key=key)
            self.message_user(
                request,
                f"New key for {key.owner} (replaces {key.prefix}, which stops working in "
                f"24 hours): {secret} — it is shown only this once.",
                messages.WARNING,
            )

    @admin.action(description="Revoke: stop the selected keys now")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked=False):
            services.api_key_revoke(key=key)
        self.message_user(
            request, "Revoked; open streaming sessions of these keys are closed.", messages.SUCCESS
        )


@admin.register(KeyAuditEvent)
class KeyAuditEventAdmin(admin.ModelAdmin):
    """Append-only here: events are written by the services and never edited or removed.

    A refused request is counted in the row of its reason, key prefix, address and minute:
    ``count`` says how many, ``last seen`` when the latest came (accounts/audit.py).
    """

    list_display = (
        "last_seen_at",
        "action",
        "key_prefix",
        "remote_addr",
        "count",
        "owner",
        "route",
        "reason",
        "created_at",
    )
    list_filter = ("action", "owner", "last_seen_at")
    search_fields = ("key_prefix", "remote_addr", "route", "reason")
    ordering = ("-last_seen_at", "-pk")
    exclude = ("bucket",)
    readonly_fields = [f.name for f in KeyAuditEvent._meta.fields if f.name != "bucket"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
