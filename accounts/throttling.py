"""Rate limits: per key (DRF throttling keyed by the key, not by the client address), and
per client address for requests that bring no valid key."""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

# What the cache raises when Redis cannot be reached (the embedded cache never does).
CACHE_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
# Seconds between two warnings that the rate limits' cache is unreachable.
WARN_EVERY_S = 60.0
_last_warning = [0.0]


def warn_cache_unreachable(exc: Exception) -> None:
    """Log that rate limits are not enforced, at most once a minute."""
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY_S:
        _last_warning[0] = now
        logger.warning("rate limits not enforced: the cache is unreachable (%s)", exc)


class APIKeyRateThrottle(SimpleRateThrottle):
    """Rate limits counted in the cache (Redis in production). When the cache cannot be
    reached the request is let through (fail open) with a warning at most once a minute:
    a Redis restart must not turn every API call into a 500."""

    scope = "api_key"

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except CACHE_UNREACHABLE as exc:
            warn_cache_unreachable(exc)
            return True

    def get_rate(self) -> str | None:
        return settings.SCRIBE_RATE_LIMIT or None

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is not None:
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class DetectRateThrottle(APIKeyRateThrottle):
    """``POST /v1/detect``'s own count per key (SCRIBE_DETECT_RATE_LIMIT): a client gating
    every chunk calls it often, and those calls leave the key's SCRIBE_RATE_LIMIT alone."""

    scope = "detect"

    def get_rate(self) -> str | None:
        return settings.SCRIBE_DETECT_RATE_LIMIT or None


def failed_auth_wait(remote_addr: str | None) -> int | None:
    """Count one request refused for want of a valid key (none, made up, expired, revoked)
    from ``remote_addr``; return the seconds it must wait when the address is over
    ``SCRIBE_AUTH_FAILURE_RATE_LIMIT`` in this window, else None.

    Only failures are counted and only they are refused: a valid key from the same address
    never comes here, so a flood of bad keys cannot lock it out. A fixed window counted with
    the cache's atomic ``incr``, so concurrent workers sharing Redis count together; fails
    open, as the per-key limit does, when the cache is unreachable.
    """
    rate = settings.SCRIBE_AUTH_FAILURE_RATE_LIMIT
    if not rate:
        return None
    limit, duration = SimpleRateThrottle.parse_rate(None, rate)  # reads nothing of self
    now = time.time()
    window = int(now // duration)
    key = f"throttle_failed_auth_{remote_addr or 'unknown'}_{window}"
    try:
        cache.add(key, 0, timeout=duration + 1)
        failures = cache.incr(key)
    except ValueError:  # the window's counter expired between add and incr
        return None
    except CACHE_UNREACHABLE as exc:
        warn_cache_unreachable(exc)
        return None
    if failures <= limit:
        return None
    return max(1, math.ceil((window + 1) * duration - now))
