from django.urls import path

from openai_compat import views

urlpatterns = [
    path("audio/transcriptions", views.transcriptions, name="openai-transcriptions"),
    path("models", views.ModelListView.as_view(), name="openai-models"),
]
