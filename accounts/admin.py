from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from accounts.models import APIKey, Owner


@admin.register(Owner)
class OwnerAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(APIKey)
class ScopedAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "owner", "scopes")  # type: ignore[assignment]
    list_filter = (*APIKeyModelAdmin.list_filter, "owner")  # type: ignore[assignment]
