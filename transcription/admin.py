from django.contrib import admin, messages

from transcription import erasure, services
from transcription.models import Job, ServiceSettings


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "kind",
        "status",
        "progress",
        "source_name",
        "media_duration_s",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "owner", "created_at")
    search_fields = ("id", "source_name", "owner__name")
    date_hierarchy = "created_at"
    actions = ["cancel", "erase"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # jobs come in through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # every field is the worker's; operators only look, cancel and erase

    def has_delete_permission(self, request, obj=None) -> bool:
        # A row deleted here would leave its files in storage: erase instead, and the
        # record retention deletes the row (transcription/erasure.py).
        return False

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        percent = job.progress_percent
        return "" if percent is None else f"{percent:.0f}%"

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        for job in queryset:
            services.job_cancel(job=job)
        self.message_user(
            request,
            f"Cancel requested for {queryset.count()} job(s); "
            "processing jobs stop at their next segment.",
            messages.SUCCESS,
        )

    @admin.action(description="Erase the selected jobs (as their owner's DELETE)")
    def erase(self, request, queryset):
        jobs = [erasure.job_erase(job=job) for job in queryset]
        stopping = sum(job.erased_at is None for job in jobs)
        self.message_user(
            request,
            f"Erased {len(jobs) - stopping} job(s)"
            + (f"; {stopping} processing job(s) are erased when they stop." if stopping else "."),
            messages.SUCCESS,
        )


@admin.register(ServiceSettings)
class ServiceSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "retention_days")

    def has_add_permission(self, request) -> bool:
        return not ServiceSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
