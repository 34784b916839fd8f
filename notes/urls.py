from django.urls import path

from notes import views

urlpatterns = [
    path("templates", views.TemplateListView.as_view(), name="template-list"),
    path("templates/<slug:slug>", views.TemplateDetailView.as_view(), name="template-detail"),
    path("jobs/<uuid:job_id>/notes", views.JobNotesView.as_view(), name="job-notes"),
]
