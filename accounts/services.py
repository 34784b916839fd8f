"""Key life cycle: create, rotate, revoke (refused requests are counted in audit.py)."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from accounts.models import APIKey, KeyAuditEvent, Owner, validate_scopes

ROTATION_GRACE = timedelta(hours=24)
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_group(key: APIKey) -> str:
    """The channel-layer group of a key's open WebSocket sessions."""
    return f"apikey.{key.prefix}"


@transaction.atomic
def api_key_create(*, owner_name: str, scopes: list[str], name: str = "") -> tuple[APIKey, str]:
    """Create a key for ``owner_name`` (creating the owner if new); return it and its secret.

    Raises ``ValidationError`` for an unknown scope or none, as the admin form does.
    """
    scopes = validate_scopes(scopes)
    owner, _ = Owner.objects.get_or_create(name=owner_name)
    key, secret = APIKey.objects.create_key(
        owner=owner, scopes=scopes, name=name or f"{owner_name} key"
    )
    assert isinstance(key, APIKey)  # the manager is typed for the abstract base
    KeyAuditEvent.objects.create(
        action=KeyAuditEvent.Action.CREATED,
        key_prefix=key.prefix,
        owner=owner,
        reason=f"scopes: {', '.join(key.scopes)}",
    )
    return key, secret


@transaction.atomic
def api_key_rotate(*, key: APIKey, grace: timedelta = ROTATION_GRACE) -> tuple[APIKey, str]:
    """Issue a new key with the same owner and scopes; the old one expires after ``grace``."""
    new, secret = APIKey.objects.create_key(
        owner=key.owner, scopes=key.scopes, name=key.name, rotated_from=key
    )
    assert isinstance(new, APIKey)
    KeyAuditEvent.objects.create(
        action=KeyAuditEvent.Action.CREATED,
        key_prefix=new.prefix,
        owner=key.owner,
        reason=f"rotation of {key.prefix}",
    )
    ends = timezone.now() + grace
    if key.expiry_date is None or key.expiry_date > ends:
        key.expiry_date = ends
        key.save(update_fields=["expiry_date"])
    KeyAuditEvent.objects.create(
        action=KeyAuditEvent.Action.ROTATED,
        key_prefix=key.prefix,
        owner=key.owner,
        reason=f"replaced by {new.prefix}; old key valid until {ends:%Y-%m-%d %H:%M} UTC",
    )
    return new, secret


def api_key_revoke(*, key: APIKey) -> None:
    """Revoke a key: the next request with it fails, and its open WebSocket sessions close."""
    APIKey.objects.filter(pk=key.pk).update(revoked=True)
    key.revoked = True
    KeyAuditEvent.objects.create(
        action=KeyAuditEvent.Action.REVOKED, key_prefix=key.prefix, owner=key.owner
    )
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(key_group(key), {"type": "key.revoked"})


def api_key_touch(*, key: APIKey) -> None:
    """Record use, at most once a minute per key (a write per request would cost more)."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
