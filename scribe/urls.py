from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scribe import health, pages
from scribe.metrics import MetricsView

handler400 = "scribe.errors.bad_request"
handler404 = "scribe.errors.page_not_found"
handler500 = "scribe.errors.server_error"

urlpatterns = [
    path("", pages.home, name="home"),
    path("", include("realtime.urls")),
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("v1/", include("transcription.urls")),
    path("v1/", include("glossary.urls")),
    path("v1/", include("notes.urls")),
    path("v1/", include("openai_compat.urls")),
    path("v1/", include("deepgram_compat.urls")),
    path("v1/", include("accounts.urls")),
    path("v1/schema", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path(
        "v1/docs",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
        name="docs",
    ),
]
