from django.urls import path

from deepgram_compat import views

urlpatterns = [
    path("listen", views.listen, name="deepgram-listen"),
]
