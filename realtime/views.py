"""The caption page (/live/): plain HTML and JavaScript served by the web process.

Nothing here knows the caller: the page asks for the key in the browser and sends it only
as a WebSocket subprotocol and an Authorization header (realtime/static/realtime/live.js).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from transcription.engine import LANGUAGE_NAMES, LANGUAGES


@require_safe
def caption_page(request: HttpRequest) -> HttpResponse:
    others = sorted(code for code in LANGUAGES if code not in LANGUAGE_NAMES)
    return render(
        request,
        "realtime/live.html",
        {"named_languages": LANGUAGE_NAMES.items(), "other_languages": others},
    )
