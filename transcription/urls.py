from django.urls import path

from transcription import views

urlpatterns = [
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<uuid:job_id>/result", views.JobResultView.as_view(), name="job-result"),
    path("detect", views.DetectView.as_view(), name="detect"),
    path("system", views.SystemView.as_view(), name="system"),
    path("system/queue", views.SystemQueueView.as_view(), name="system-queue"),
]
