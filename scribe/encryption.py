"""Secrets scribe must read back (webhook signing secrets), encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under a key that lives in
the environment, never in the database: a dump of the database alone does not sign.
``SCRIBE_SECRETS_KEY`` encrypts; it and each of ``SCRIBE_SECRETS_KEY_PREVIOUS`` decrypt,
so a key is rotated without a moment in which stored secrets cannot be read, and
``manage.py reencrypt_secrets`` then moves every stored secret to the current key
(docs/configuration.md#secrets-at-rest). Unset, the key is derived from ``SECRET_KEY``,
so an install that sets nothing still works. Each key is any string: the Fernet key is
derived from it with HKDF-SHA256.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from scribe.exceptions import ScribeError

KEY_SETTING = "SCRIBE_SECRETS_KEY"
PREVIOUS_SETTING = "SCRIBE_SECRETS_KEY_PREVIOUS"
_INFO = b"scribe secrets at rest v1"


class SecretUndecryptable(ScribeError):
    code = "secret_undecryptable"


def _fernet(material: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        material.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


@functools.lru_cache(maxsize=8)
def _keys(current: str, previous: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(current), *(_fernet(material) for material in previous)])


def secrets_keys() -> MultiFernet:
    """The current key first (it encrypts), then the previous ones (they only decrypt)."""
    current = settings.SCRIBE_SECRETS_KEY or settings.SECRET_KEY
    return _keys(current, tuple(settings.SCRIBE_SECRETS_KEY_PREVIOUS))


def secret_encrypt(plain: str) -> str:
    """``plain`` encrypted under the current key, as text for a database column."""
    return secrets_keys().encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    """The secret ``token`` holds; ``SecretUndecryptable`` when no configured key opens it."""
    try:
        return secrets_keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable(_undecryptable()) from None


def secret_reencrypt(token: str) -> str:
    """``token`` encrypted again under the current key (whichever configured key opens it)."""
    try:
        return secrets_keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable(_undecryptable()) from None


def _undecryptable() -> str:
    used = KEY_SETTING if settings.SCRIBE_SECRETS_KEY else f"SECRET_KEY ({KEY_SETTING} is unset)"
    return (
        f"A stored secret cannot be decrypted with {used} nor with {PREVIOUS_SETTING}: it was "
        f"encrypted under another key. Add that key to {PREVIOUS_SETTING} (the old SECRET_KEY "
        f"if {KEY_SETTING} was unset then), or issue the owner a new webhook secret."
    )
