"""The audit trail of refused requests, counted so that a flood cannot grow it at will.

A refused request adds one to the row of its (why, key prefix, client address, minute),
made on the first such request: 2,000 refusals of one made-up key from one address in a
minute are one row with ``count`` 2,000, which still says who knocked, with what, and how
often. Made-up keys could still vary their prefix on every request, and an attacker its
address, so requests that bring no key of anyone's are bounded further, per minute:

- an address gets its own rows for at most ``DENIED_ROWS_PER_ADDRESS`` distinct
  (why, prefix) pairs; what else it sends is counted in one more row, prefix ``(more)``;
- at most ``DENIED_ADDRESSES`` distinct addresses get rows of their own; the rest are
  counted together, without an address, bounded as one more address.

That is at most 11 rows a minute per address and 1,111 a minute in all for keys of no one
(docs/api.md). A refused request with a key of someone's (wrong scope, over its rate) is
always counted under that key and its address: keys are made by operators, not callers.

Which (why, prefix) pairs and addresses came first this minute is kept in the cache (Redis
in production, so every worker agrees); while it is unreachable, everything is counted in
the shared rows, which keeps the bound.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import APIKey, KeyAuditEvent
from accounts.throttling import CACHE_UNREACHABLE, warn_cache_unreachable

DENIED_ROWS_PER_ADDRESS = 10
DENIED_ADDRESSES = 100
MORE = "(more)"
# The cache remembers a minute's admissions a little past its end.
ADMISSION_TTL_S = 120


def key_prefix_of(raw_key: str | None) -> str:
    """The visible part of a key as sent (before the dot), printable, at most 16 characters."""
    prefix = (raw_key or "").partition(".")[0][:16]
    return "".join(c if c.isprintable() else "?" for c in prefix)


def among_the_first(slot: str, member: str, limit: int) -> bool:
    """Whether ``member`` is one of the first ``limit`` distinct members of ``slot``.

    The slot's counter grows with the cache's atomic ``incr``, so ``limit`` holds across
    workers; only admitted members are remembered, so a spread of distinct members costs
    the cache ``limit`` + 1 keys per slot, not one per member.
    """
    seen = f"{slot}:{hashlib.blake2b(member.encode(), digest_size=8).hexdigest()}"
    if cache.get(seen):
        return True
    if (cache.get(slot) or 0) >= limit:
        return False
    cache.add(slot, 0, timeout=ADMISSION_TTL_S)
    try:
        rank = cache.incr(slot)
    except ValueError:  # the counter expired in between
        return False
    if rank > limit:
        return False
    cache.set(seen, True, timeout=ADMISSION_TTL_S)
    return True


def _bounded(
    why: str, prefix: str, address: str | None, minute: datetime
) -> tuple[str, str, str | None, str]:
    """(why, prefix, address, note) under which a request with no key of anyone's counts."""
    window = f"audit:denied:{minute:%Y%m%d%H%M}"
    note = ""
    try:
        if address and not among_the_first(f"{window}:addr", address, DENIED_ADDRESSES):
            address, note = None, f" [address not kept: over {DENIED_ADDRESSES} this minute]"
        if among_the_first(f"{window}:rows:{address}", f"{why}|{prefix}", DENIED_ROWS_PER_ADDRESS):
            return why, prefix, address, note
    except CACHE_UNREACHABLE as exc:
        warn_cache_unreachable(exc)
        return MORE, MORE, None, " [counted with the rest: the cache is unreachable]"
    note += (
        f" [counted with the rest: over {DENIED_ROWS_PER_ADDRESS} distinct key prefixes"
        " and reasons from this address this minute]"
    )
    return MORE, MORE, address, note


def request_denied_record(
    *,
    raw_key: str | None,
    route: str,
    reason: str,
    remote_addr: str | None,
    key: APIKey | None = None,
) -> None:
    """Count a refused request. ``reason`` starts with why ("AuthenticationFailed: …",
    "WebSocket: …"): the part before the colon is part of the row's identity."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    why = reason.partition(":")[0].strip()[:40]
    prefix, address, note = key_prefix_of(raw_key), remote_addr or None, ""
    if key is not None:
        prefix = key.prefix
    else:
        why, prefix, address, note = _bounded(why, prefix, address, minute)
    bucket = f"{why}|{prefix}|{address or '-'}|{minute:%Y-%m-%dT%H:%M}"
    if KeyAuditEvent.objects.filter(bucket=bucket).update(count=F("count") + 1, last_seen_at=now):
        return
    try:
        with transaction.atomic():  # a savepoint: a lost race must not break the request's
            KeyAuditEvent.objects.create(
                action=KeyAuditEvent.Action.DENIED,
                bucket=bucket,
                key_prefix=prefix,
                owner=key.owner if key else None,
                route=route[:300],
                reason=(reason[: 300 - len(note)] + note),
                remote_addr=address,
                last_seen_at=now,
            )
    except IntegrityError:  # another worker made the row first
        KeyAuditEvent.objects.filter(bucket=bucket).update(count=F("count") + 1, last_seen_at=now)


def denied_purge(*, before: datetime) -> int:
    """Delete the refused-request rows last seen before ``before`` (the record retention,
    run by the hourly purge); key creations, rotations and revocations stay."""
    deleted, _ = KeyAuditEvent.objects.filter(
        action=KeyAuditEvent.Action.DENIED, last_seen_at__lt=before
    ).delete()
    return deleted
