from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin

from accounts import services
from accounts.models import APIKey, KeyAuditEvent, Owner


@admin.register(Owner)
class OwnerAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(APIKey)
class ScopedAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (  # type: ignore[assignment]
        *APIKeyModelAdmin.list_display,
        "owner",
        "scopes",
        "last_used_at",
    )
    list_filter = (*APIKeyModelAdmin.list_filter, "owner")  # type: ignore[assignment]
    readonly_fields = (*APIKeyModelAdmin.readonly_fields, "last_used_at", "rotated_from")
    actions = ["rotate", "revoke"]

    def save_model(self, request, obj, form, change):
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
    list_display = ("created_at", "action", "key_prefix", "owner", "route", "reason", "remote_addr")
    list_filter = ("action", "owner", "created_at")
    search_fields = ("key_prefix", "route", "reason")
    readonly_fields = [f.name for f in KeyAuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
