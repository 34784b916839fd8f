from django.urls import path
from rest_framework.routers import SimpleRouter

from glossary import views

router = SimpleRouter(trailing_slash=False)
router.register("glossaries", views.GlossaryViewSet, basename="glossary")

urlpatterns = [
    *router.urls,
    path("text/correct", views.TextCorrectView.as_view(), name="text-correct"),
]
