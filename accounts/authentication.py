"""DRF authentication by API key: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from accounts.models import APIKey, Owner


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
    """Return the key carried by ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    value = headers.get("X-API-Key")
    if value:
        return value.strip()
    scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = key_from_headers(request.headers)
        if raw is None:
            return None
        try:
            key = APIKey.objects.get_from_key(raw)
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed(
                "The API key is not valid: check for a typo, or ask an operator for a new key."
            ) from None
        if key.has_expired:
            raise exceptions.AuthenticationFailed(
                "The API key has expired: ask an operator for a new key."
            )
        return Caller(key=key, owner=key.owner), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="scribe"'
