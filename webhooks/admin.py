"""Webhook secrets (created and rotated here, shown once) and the delivery log."""

from __future__ import annotations

from django.contrib import admin, messages

from webhooks import services
from webhooks.models import Delivery, DeliveryAttempt, WebhookSecret


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    """The secret itself is never shown again after it is issued: only its first letters."""

    list_display = ("owner", "hint", "rotated_at", "previous_valid_until")
    fields = ("owner",)
    actions = ["rotate"]

    def get_readonly_fields(self, request, obj=None):
        return ("owner", "hint", "rotated_at", "previous_valid_until") if obj else ()

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj) if obj else self.fields

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing here is edited by hand; rotate with the action
        secret = services.webhook_secret_rotate(owner=obj.owner)
        obj.pk = WebhookSecret.objects.get(owner=obj.owner).pk
        self._show_once(request, obj.owner, secret)

    @admin.action(description="Rotate: issue a new secret, the old one signs for 24 h more")
    def rotate(self, request, queryset):
        for row in queryset.select_related("owner"):
            self._show_once(request, row.owner, services.webhook_secret_rotate(owner=row.owner))

    def _show_once(self, request, owner, secret: str) -> None:
        self.message_user(
            request,
            f"Webhook signing secret for {owner}: {secret} — it is shown only this once. "
            "Deliveries are signed with it from now on (a previous secret, if any, signs "
            "beside it for 24 hours).",
            messages.WARNING,
        )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "outcome", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Written by the workers, read here: every attempt with its answer and duration."""

    list_display = ("created_at", "event", "job", "owner", "url", "status", "attempts")
    list_filter = ("status", "event", "owner")
    search_fields = ("=id", "=job__id", "url")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [DeliveryAttemptInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
