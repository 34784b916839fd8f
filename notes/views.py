"""/v1/templates (what notes can be made by) and POST /v1/jobs/{id}/notes (``transcribe``
scope; a job is its owner's, as everywhere)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from notes.models import Template
from notes.services import note_add
from scribe.fields import StrictCharField
from transcription.errors import JobStateError, ResultErasedError, ResultGoneError
from transcription.models import Job
from transcription.representation import job_representation
from transcription.serializers import llm_needed
from transcription.views import ERROR, OwnedJobsMixin, base_url


def template_representation(template: Template) -> dict[str, Any]:
    return {
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "language": template.language or None,
        "version": template.version,
        "schema": template.schema,
        "prompt": template.prompt,
    }


class TemplateListView(GenericAPIView):
    required_scope = "transcribe"

    @extend_schema(
        operation_id="templates_list",
        responses={200: OpenApiTypes.OBJECT},
        description="The templates notes can be made by, with their JSON Schemas and prompts.",
    )
    def get(self, request):
        templates = Template.objects.filter(enabled=True)
        return Response({"templates": [template_representation(t) for t in templates]})


class TemplateDetailView(GenericAPIView):
    required_scope = "transcribe"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, slug):
        template = Template.objects.filter(slug=slug, enabled=True).first()
        if template is None:
            raise NotFound(f"No template {slug!r} here; GET /v1/templates lists them.")
        return Response(template_representation(template))


class NotesRequestSerializer(serializers.Serializer):
    template = StrictCharField(max_length=50)

    def validate_template(self, slug: str) -> Template:
        llm_needed("Notes")
        template = Template.objects.filter(slug=slug, enabled=True).first()
        if template is None:
            known = Template.objects.filter(enabled=True).values_list("slug", flat=True)
            raise serializers.ValidationError(
                f"No template {slug!r} here; use one of {', '.join(known) or '(none)'}."
            )
        return template


class JobNotesView(OwnedJobsMixin, GenericAPIView):
    lookup_url_kwarg = "job_id"
    serializer_class = NotesRequestSerializer

    @extend_schema(
        operation_id="jobs_notes_create",
        request=NotesRequestSerializer,
        responses={202: OpenApiTypes.OBJECT, 409: ERROR, 410: ERROR},
        description="Notes of a completed job's stored transcript by another template, "
        "without transcribing again; the job's `notes` show them when made.",
    )
    def post(self, request, job_id):
        job: Job = self.get_object()
        if job.erased_at and not job.result_purged_at:
            raise ResultErasedError("This job was erased; nothing of its transcript is kept.")
        if job.status != Job.Status.COMPLETED:
            raise JobStateError(
                f"The job is {job.status}; notes are made from a completed job's transcript. "
                "Poll GET /v1/jobs/{id} until its status is completed."
            )
        if job.result_purged_at or not job.result_path:
            raise ResultGoneError(
                "This job's transcript was deleted after the retention period; notes cannot "
                "be made from it any more. Submit the file again."
            )
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            raise ValidationError(serializer.errors)
        note_add(job=job, template=serializer.validated_data["template"])
        job.refresh_from_db()
        return Response(
            job_representation(job, base_url=base_url(request)), status=status.HTTP_202_ACCEPTED
        )
