"""/v1/glossaries and /v1/text/correct (``glossary`` scope), owned like jobs."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from glossary import services
from glossary.models import Glossary
from glossary.serializers import GlossarySerializer, TextCorrectSerializer

# A conflict with a unique rule (scribe/schema.py adds the common errors).
NAME_TAKEN = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"},
    description="The caller already has a glossary with this name (`name_taken`), or "
    "`terms` lists a canonical spelling twice (`terms_repeated`).",
)


@extend_schema_view(
    create=extend_schema(responses={201: GlossarySerializer, 409: NAME_TAKEN}),
    update=extend_schema(responses={200: GlossarySerializer, 409: NAME_TAKEN}),
    partial_update=extend_schema(responses={200: GlossarySerializer, 409: NAME_TAKEN}),
)
class GlossaryViewSet(viewsets.ModelViewSet):
    serializer_class = GlossarySerializer
    required_scope = "glossary"
    queryset = Glossary.objects.none()  # for the schema's types; requests use get_queryset

    def get_queryset(self):
        return Glossary.objects.usable_by(self.request.user.owner).prefetch_related("terms")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "owner": self.request.user.owner}


class TextCorrectView(GenericAPIView):
    required_scope = "glossary"
    serializer_class = TextCorrectSerializer

    @extend_schema(
        request=TextCorrectSerializer,
        responses={
            200: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="`text` (corrected), `raw_text`, `mode`, `stages` (what each "
                "changed), `flags`, and `suppressed`: true where the flags mark the text as "
                "a hallucination (a known phrase, a repetition loop), which a job sets apart "
                "uncorrected; `text` is then the text as given.",
            )
        },
        description="Run the jobs' post-processing on text: corrected text, what "
        "each stage changed, flags, and whether a job would suppress it.",
    )
    def post(self, request):
        owner = request.user.owner
        serializer = TextCorrectSerializer(data=request.data, context={"owner": owner})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        glossary = (
            services.glossary_for(owner=owner, glossary_id=data["glossary_id"])
            if data.get("glossary_id")
            else None
        )
        return Response(
            services.text_correct(
                text=data["text"],
                language=data["language"],
                glossary=glossary,
                mode=data["mode"],
                owner=owner,
                key_prefix=request.auth.prefix,
            )
        )
