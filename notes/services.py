"""Notes of jobs: asked for at submission or later, made after the transcript, never
holding it back (docs/notes.md).

A job submitted with ``notes`` or ``keywords`` gets its pending ``Note`` rows in the same
transaction. When the job ends (``job_ended``) its notes are sent to the notes queue (a
django-q2 cluster of its own, ``qcluster --name notes``: an LLM's wait never holds a batch
worker and its model) or, if the job failed or was cancelled, fail at once. A worker
claims a note with a lease, makes it (notes/making.py) and records it, then records a
``job.notes.completed`` or ``job.notes.failed`` event for the webhooks. The minute sweep
sends again the notes whose message was lost or whose worker died. Erasing a job deletes
its notes.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from glossary.models import Term
from glossary.services import llm_audit
from notes import making
from notes.models import KeywordCategory, Note, Template
from notes.structured import NotesError, structured_answer
from scribe.db import transient_errors
from scribe.llm import llm_config
from scribe.logs import log_context
from transcription import storage
from transcription.models import Job, JobEvent
from transcription.options import JobOptions

logger = logging.getLogger(__name__)
NOTE_TASK = "notes.tasks.note_run"


def notes_request(*, job: Job, options: JobOptions) -> list[Note]:
    """The pending notes a new job's options ask for (in the job's transaction)."""
    wanted: list[Note] = []
    if options.notes_template:
        wanted.append(Note(job=job, kind=Note.Kind.NOTES, template_slug=options.notes_template))
    if options.keywords:
        wanted.append(Note(job=job, kind=Note.Kind.KEYWORDS))
    return Note.objects.bulk_create(wanted)


def note_add(*, job: Job, template: Template) -> tuple[Note, bool]:
    """``POST /v1/jobs/{id}/notes``: notes of a completed job's stored transcript by
    ``template``. A note of that template still pending is the same task (False); one that
    ended is made again, by the template as it is now."""
    with transaction.atomic():
        note, created = Note.objects.select_for_update().get_or_create(
            job=job, kind=Note.Kind.NOTES, template_slug=template.slug
        )
        if not created and note.status == Note.Status.PENDING:
            return note, False
        if not created:
            Note.objects.filter(pk=note.pk).update(
                status=Note.Status.PENDING,
                data=None,
                error_code="",
                error_message="",
                attempts=0,
                usage={},
                finished_at=None,
                lease_until=None,
            )
            note.refresh_from_db()
        note_enqueue(note=note)
    return note, True


def note_enqueue(*, note: Note) -> None:
    """Send ``note`` to the notes queue once the surrounding transaction commits."""
    Note.objects.filter(pk=note.pk).update(enqueued_at=timezone.now())
    note_id = note.pk

    def send() -> None:
        try:
            async_task(
                NOTE_TASK,
                note_id,
                cluster=settings.SCRIBE_NOTES_QUEUE,
                task_name=f"note-{note_id}",
                group="notes",
            )
        except Exception as exc:  # the broker is down: the minute sweep sends it again
            logger.warning("note %s: not queued (%s); the sweep sends it again", note_id, exc)

    transaction.on_commit(send)


def notes_start_for(sender, *, job_id, **kwargs) -> None:
    """``job_ended``'s receiver: the job's transcript is there, or will never be."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return
    pending = list(job.notes.filter(status=Note.Status.PENDING, enqueued_at__isnull=True))
    if job.status == Job.Status.COMPLETED:
        with transaction.atomic():
            for note in pending:
                note_enqueue(note=note)
        return
    for note in pending:
        _note_end(
            note,
            status=Note.Status.FAILED,
            error_code="no_transcript",
            error_message=f"The job {job.status} before its transcript was made, so it has no "
            "notes.",
        )


def note_run(*, note_id: int) -> None:
    """A notes worker's run of one note: claim it, make it, record how it went."""
    note = Note.objects.select_related("job").filter(pk=note_id).first()
    lease = timezone.now() + timedelta(seconds=settings.SCRIBE_NOTES_TIMEOUT_S)
    if note is None or not note.claim(lease_until=lease):
        return
    with log_context(job_id=note.job_id):
        _note_run(note)


def _note_run(note: Note) -> None:
    try:
        changes = _note_made(note)
    except NotesError as exc:
        logger.warning("note %s of job %s failed: %s", note.pk, note.job_id, exc.message)
        changes = {
            "status": Note.Status.FAILED,
            "error_code": exc.code,
            "error_message": exc.message,
            **exc.cost(),
        }
    except transient_errors():
        logger.warning("note %s: the database failed; the sweep runs it again", note.pk)
        return
    except Exception as exc:
        logger.exception("note %s of job %s failed unexpectedly", note.pk, note.job_id)
        changes = {
            "status": Note.Status.FAILED,
            "error_code": "internal_error",
            "error_message": f"Notes failed unexpectedly ({type(exc).__name__}: {exc}). It "
            "was logged; ask again, and tell the operator if it fails again.",
        }
    _note_end(note, **changes)


def _note_made(note: Note) -> dict[str, Any]:
    """Make ``note``; the changes that record it (raises NotesError)."""
    job, config = note.job, llm_config()
    if config is None:
        raise NotesError(
            "llm_not_configured",
            "This server has no LLM configured (SCRIBE_LLM_BASE_URL) any more.",
        )
    if not job.result_path:
        raise NotesError("no_transcript", "The job's transcript is not kept any more.")
    result = storage.result_read(job.result_path)
    transcript = making.Transcript.from_result(json.loads(result), source_name=job.source_name)
    ask = functools.partial(
        structured_answer,
        config=config,
        audit=llm_audit(owner=job.owner, job=job),
        attempts=settings.SCRIBE_LLM_NOTES_ATTEMPTS,
    )
    budget = making.Budget(settings.SCRIBE_LLM_CONTEXT_TOKENS)
    parameters = {
        "context_tokens": budget.context_tokens,
        "attempts_allowed": settings.SCRIBE_LLM_NOTES_ATTEMPTS,
    }
    if note.kind == Note.Kind.KEYWORDS:
        categories = list(KeywordCategory.objects.values_list("name", flat=True)) or ["other"]
        answer = making.keywords_make(
            transcript,
            categories=categories,
            spellings=glossary_spellings(job.owner_id, job.opts.glossary_id),
            ask=ask,
            budget=budget,
        )
        version, digest = None, making.keywords_prompt_hash(categories)
    else:
        template = Template.objects.filter(slug=note.template_slug, enabled=True).first()
        if template is None:
            raise NotesError(
                "template_not_found",
                f"The template {note.template_slug!r} was deleted or disabled meanwhile; "
                "GET /v1/templates lists those there are.",
            )
        made = making.Template(
            template.slug, template.name, template.language, template.schema, template.prompt
        )
        answer = making.notes_make(made, transcript, ask=ask, budget=budget)
        version, digest = template.version, made.prompt_hash()
    return {
        "status": Note.Status.COMPLETED,
        "data": answer.data,
        "model": answer.model,
        "attempts": answer.attempts,
        "usage": answer.usage,
        "template_version": version,
        "prompt_hash": digest,
        "parameters": {**parameters, "response_format": answer.response_format},
    }


def glossary_spellings(owner_id: int, glossary_id: int | None) -> dict[str, tuple[str, ...]]:
    """The terms of the owner's glossary (canonical → variants) keywords are spelled as."""
    if glossary_id is None:
        return {}
    terms = Term.objects.filter(glossary_id=glossary_id, glossary__owner_id=owner_id)
    return {t.canonical: tuple(t.variants) for t in terms}


def _note_end(note: Note, **changes: Any) -> None:
    """Record a note's end and the event the webhooks send for it, in one transaction."""
    with transaction.atomic():
        if note.finish(**changes):
            status = (
                "notes.completed" if changes["status"] == Note.Status.COMPLETED else "notes.failed"
            )
            JobEvent.record(job_id=note.job_id, status=status)


def notes_sweep(*, now=None) -> int:
    """Send again the notes whose message was lost or whose worker died, and fail those of
    jobs that ended without a transcript. Runs every minute; returns how many it touched."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SCRIBE_REQUEUE_AFTER_S)
    resend = Note.objects.runnable(now=now).exclude(enqueued_at__gt=stale)
    touched = 0
    for note in resend:
        with transaction.atomic():
            note_enqueue(note=note)
        touched += 1
    ended = Note.objects.pending().filter(job__status__in=(Job.Status.FAILED, Job.Status.CANCELLED))
    for job_id in set(ended.values_list("job_id", flat=True)):
        notes_start_for(Job, job_id=job_id)
        touched += 1
    return touched


def notes_erase(sender, *, job_id, **kwargs) -> int:
    """``job_erased``'s receiver: notes are content; nothing of them is kept."""
    deleted, _ = Note.objects.filter(job_id=job_id).delete()
    return deleted
