"""ASGI entry point: HTTP (Django) behind an upload size guard."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scribe.settings")
django_app = get_asgi_application()

from scribe.upload_guard import UploadSizeGuard  # noqa: E402 - needs settings loaded

application = UploadSizeGuard(django_app)
