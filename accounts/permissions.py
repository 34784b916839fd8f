"""Scope checks: a view names the scope it needs; a key without it gets 403."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


class HasScope(BasePermission):
    """Grant access when the caller's key has ``view.required_scope``."""

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None)
        if scope is None or request.auth is None:
            return request.auth is not None
        if request.auth.has_scope(scope):
            return True
        self.message = (
            f"This API key lacks the {scope!r} scope (it has: "
            f"{', '.join(request.auth.scopes) or 'none'}). Ask an operator for a key with it."
        )
        return False
