from django.urls import path

from realtime import views

urlpatterns = [
    path("live/", views.caption_page, name="caption-page"),
]
