from __future__ import annotations

from django.db import transaction

from accounts.models import APIKey, Owner


@transaction.atomic
def api_key_create(*, owner_name: str, scopes: list[str], name: str = "") -> tuple[APIKey, str]:
    """Create a key for ``owner_name`` (creating the owner if new); return it and its secret."""
    owner, _ = Owner.objects.get_or_create(name=owner_name)
    key, secret = APIKey.objects.create_key(
        owner=owner, scopes=sorted(set(scopes)), name=name or f"{owner_name} key"
    )
    assert isinstance(key, APIKey)  # the manager is typed for the abstract base
    return key, secret
