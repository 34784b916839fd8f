"""Per-key rate limits (DRF throttling keyed by the key, not by the client address)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

# Seconds between two warnings that the rate limits' cache is unreachable.
WARN_EVERY_S = 60.0
_last_warning = [0.0]


class APIKeyRateThrottle(SimpleRateThrottle):
    """Rate limits counted in the cache (Redis in production). When the cache cannot be
    reached the request is let through (fail open) with a warning at most once a minute:
    a Redis restart must not turn every API call into a 500."""

    scope = "api_key"

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            now = time.monotonic()
            if now - _last_warning[0] >= WARN_EVERY_S:
                _last_warning[0] = now
                logger.warning("rate limits not enforced: the cache is unreachable (%s)", exc)
            return True

    def get_rate(self) -> str | None:
        return settings.SCRIBE_RATE_LIMIT or None

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is not None:
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def throttle_window_s() -> int:
    """Return the length of one rate-limit window in seconds (a minute when unlimited)."""
    return int(APIKeyRateThrottle().duration or 60)
