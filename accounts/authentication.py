"""DRF authentication by API key: ``Authorization: Bearer <key>``, ``Authorization: Token
<key>`` (as Deepgram's SDK sends it) or ``X-API-Key: <key>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from rest_framework import authentication, exceptions

from accounts.models import APIKey, Owner
from accounts.services import api_key_touch


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of a request: a key acting for its owner."""

    key: APIKey
    owner: Owner
    is_authenticated: bool = True
    is_anonymous: bool = False

    def __str__(self) -> str:
        return f"{self.owner.name} ({self.key.prefix})"


def key_from_headers(headers) -> str | None:
    """Return the key carried by ``Authorization: Bearer``, ``Authorization: Token`` or
    ``X-API-Key``, if any."""
    value = headers.get("X-API-Key")
    if value:
        return value.strip()
    scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() in ("bearer", "token") and credentials.strip():
        return credentials.strip()
    return None


def unusable_key_message(raw: str) -> str:
    prefix = raw.partition(".")[0]
    revoked = APIKey.objects.filter(prefix=prefix, revoked=True).first()
    if revoked is not None and revoked.is_valid(raw):
        return "The API key has been revoked: ask an operator for a new key."
    return "The API key is not valid: check for a typo, or ask an operator for a new key."


def check_key_usable(key: APIKey) -> None:
    """Raise AuthenticationFailed for a key past its expiry (revoked keys are not found)."""
    if key.has_expired:
        raise exceptions.AuthenticationFailed(
            "The API key has expired (a rotated key stops working after its grace period): "
            "use the new key, or ask an operator for one."
        )


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = key_from_headers(request.headers)
        if raw is None:
            return None
        try:
            key = cast(APIKey, APIKey.objects.get_from_key(raw))
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed(unusable_key_message(raw)) from None
        check_key_usable(key)
        api_key_touch(key=key)
        return Caller(key=key, owner=key.owner), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="scribe"'
