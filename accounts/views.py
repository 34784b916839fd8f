"""GET /v1/keys/me: the calling key's owner and scopes, so a client (the caption page)
can say which scope a key lacks before it is refused."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts.serializers import KeySelfSerializer


class KeySelfView(GenericAPIView):
    # Any valid key, whatever its scopes: a key lacking one must be able to learn so.
    required_scope = None
    serializer_class = KeySelfSerializer

    @extend_schema(
        description="The key the request was made with: its visible prefix, name, owner, "
        "scopes and expiry (never the secret). Needs a valid key of any scope."
    )
    def get(self, request):
        return Response(KeySelfSerializer(request.auth).data)
