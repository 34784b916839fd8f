"""Per-key rate limits (DRF throttling keyed by the key, not by the client address)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class APIKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_rate(self) -> str | None:
        return settings.SCRIBE_RATE_LIMIT or None

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is not None:
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def throttle_window_s() -> int:
    """Return the length of one rate-limit window in seconds (a minute when unlimited)."""
    return int(APIKeyRateThrottle().duration or 60)
