"""The OpenAPI schema says every answer the API can give, errors included.

Generated clients are built from /v1/schema, so a status code missing here is a client
that does not expect it. drf-spectacular documents the success answers from the views;
this hook adds the error envelope (scribe.errors) under every status an operation can
answer with: the ones every authenticated route has, and those of uploads and bodies.
Views add their own (409, 410) with ``extend_schema``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import SimpleMetadata

ERROR_COMPONENT = "Error"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, for programs"},
                "message": {"type": "string", "description": "what was wrong, what to do"},
                "fields": {
                    "type": "object",
                    "description": "per-field problems of a 400 (invalid)",
                },
            },
        }
    },
}

# Status codes any operation can answer with, and why.
EVERY_OPERATION = {
    "400": "The request is invalid: `error.fields` says what to change.",
    "401": "No API key, or one that is unknown, revoked or expired.",
    "403": "The key lacks the scope this operation needs.",
    "404": "Nothing of the caller's has this id.",
    "405": "The method is not allowed on this path.",
    "406": "The Accept header asks for a type this operation cannot give.",
    "429": "Over the key's rate limit or the queue's cap: retry after `Retry-After` seconds.",
    "503": "The database or a model is unavailable: retry after `Retry-After` seconds.",
}
WITH_BODY = {
    "415": "The request body's content type is not accepted, or the upload is not media.",
}
UPLOADS = {
    "413": "The upload or its audio is longer than this server accepts.",
}
# What an upload's ``file`` part is: media with a sound track (anything else is a 415).
MEDIA_PART = {"file": {"contentType": "audio/*, video/*"}}


def document_errors(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_COMPONENT] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            errors = dict(EVERY_OPERATION)
            body = operation.get("requestBody", {}).get("content", {})
            if method in ("post", "put", "patch"):
                errors.update(WITH_BODY)
            if "multipart/form-data" in body:
                errors.update(UPLOADS)
                body["multipart/form-data"].setdefault("encoding", MEDIA_PART)
            responses = operation["responses"]
            for code, description in errors.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result


# OpenAPI links: the ids an answer holds, and the operations they are for. Generated
# clients and schemathesis' stateful phase follow them (tests/scribe/test_api_contract_fuzz.py).
JOB_ID = "$response.body#/job_id"
JOB_LINKS = {
    "GetJob": ("v1_jobs_retrieve", {"job_id": JOB_ID}),
    "GetResult": ("v1_jobs_result_retrieve", {"job_id": JOB_ID}),
    "CancelJob": ("v1_jobs_cancel_create", {"job_id": JOB_ID}),
    "DeleteJob": ("v1_jobs_destroy", {"job_id": JOB_ID}),
}
GLOSSARY_ID = {"id": "$response.body#/id"}
GLOSSARY_LINKS = {
    "GetGlossary": ("v1_glossaries_retrieve", GLOSSARY_ID),
    "PutGlossary": ("v1_glossaries_update", GLOSSARY_ID),
    "PatchGlossary": ("v1_glossaries_partial_update", GLOSSARY_ID),
    "DeleteGlossary": ("v1_glossaries_destroy", GLOSSARY_ID),
}
OPENAI_JOB = {"job_id": "$response.header.X-Scribe-Job-Id"}
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("v1_jobs_create", "202"): JOB_LINKS,
    ("v1_jobs_retrieve", "200"): {k: v for k, v in JOB_LINKS.items() if k != "GetJob"},
    ("jobs_list", "200"): {
        name: (target, {"job_id": "$response.body#/results/0/job_id"})
        for name, (target, _) in JOB_LINKS.items()
    },
    ("audio_transcriptions_create", "200"): {"GetJob": ("v1_jobs_retrieve", OPENAI_JOB)},
    ("audio_transcriptions_create", "504"): {
        "GetJob": ("v1_jobs_retrieve", OPENAI_JOB),
        "CancelJob": ("v1_jobs_cancel_create", OPENAI_JOB),
        "DeleteJob": ("v1_jobs_destroy", OPENAI_JOB),
    },
    ("v1_glossaries_create", "201"): GLOSSARY_LINKS,
    ("v1_glossaries_update", "200"): GLOSSARY_LINKS,
    ("v1_glossaries_list", "200"): {
        name: (target, {"id": "$response.body#/results/0/id"})
        for name, (target, _) in GLOSSARY_LINKS.items()
    },
}


def document_links(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: LINKS, between the operations the schema has."""
    operations = {
        operation["operationId"]: operation
        for path_item in result.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for (source, code), links in LINKS.items():
        response = operations.get(source, {}).get("responses", {}).get(code)
        if response is None:
            continue
        response["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
            if target in operations
        }
    return result


class OptionsMetadata(SimpleMetadata):
    """What ``OPTIONS`` answers: DRF's description of a view, with its writable fields only
    where the view has a serializer (the upload routes read multipart themselves). The
    whole contract is /v1/schema."""

    def determine_actions(self, request, view) -> dict[str, Any]:
        if getattr(view, "serializer_class", None) is None:
            return {}
        return super().determine_actions(request, view)
