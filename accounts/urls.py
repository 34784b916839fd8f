from django.urls import path

from accounts import views

urlpatterns = [
    path("keys/me", views.KeySelfView.as_view(), name="key-self"),
]
