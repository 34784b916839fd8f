"""Persistence of live sessions: each is a Job of kind ``stream`` with its finals in rows.

Called from the realtime worker's decode thread (synchronous ORM, off the event loop).
A final is an engine ``Segment``, flagged and corrected by the same review as a file
job's segments (``glossary.review.segment_review``); the session's stored result is an
engine ``Transcript`` post-processed like a file job's result.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from typing import Any

from django.utils import timezone

from glossary.models import Glossary
from glossary.review import Review, is_hallucination, post_process, segment_review
from glossary.services import hallucination_phrases, rule_specs, term_specs
from realtime.live_types import FinalSegment, stored_segment
from realtime.models import StreamSegment
from scribe.processes import this_host
from transcription import storage
from transcription.engine import (
    PIPELINE_VERSION,
    Metrics,
    RunRecord,
    Transcript,
)
from transcription.models import Job
from transcription.options import JobOptions


def stream_job_create(*, owner_id: int, options: JobOptions) -> Job:
    return Job.start_stream(owner_id=owner_id, options=options, host=this_host(), pid=os.getpid())


def session_review(*, owner_id: int, options: JobOptions) -> Review:
    """The review of a session's finals, by its start ``options``: its correction mode, its
    glossary while the session's owner owns it (checked again here: recovery builds it long
    after the start), the enabled rules and the hallucination phrases."""
    glossary_id = options.glossary_id
    glossary = (
        Glossary.objects.usable_by(owner_id).filter(pk=glossary_id).first() if glossary_id else None
    )
    return Review(
        mode=options.post_correction,
        terms=term_specs(glossary),
        rules=rule_specs(glossary),
        phrases=hallucination_phrases(),
    )


def stream_final_save(*, job_id, final: FinalSegment, review: Review) -> dict[str, Any] | None:
    """Review and store a final; return it as the client sees it, or None when it is a
    hallucination (stored with its flags, never sent)."""
    segment = asdict(final.to_segment())
    segment["confidence"] = round(math.exp(min(segment["avg_logprob"], 0.0)), 4)
    reviewed = segment_review(segment, review=review, speech=None)
    StreamSegment.objects.create(
        job_id=job_id,
        index=final.index,
        start=final.start,
        end=final.end,
        text=reviewed["text"].strip(),
        raw_text=reviewed["raw_text"].strip(),
        words=reviewed["words"],
        confidence=reviewed["confidence"],
        avg_logprob=reviewed["avg_logprob"],
        compression_ratio=reviewed["compression_ratio"],
        flags=reviewed["flags"],
    )
    Job(pk=job_id, status=Job.Status.PROCESSING).record_progress(
        processed_s=final.end, total_s=None
    )
    if is_hallucination(reviewed):
        return None
    return {
        "id": final.index,
        "start": final.start,
        "end": final.end,
        "text": reviewed["text"].strip(),
        "words": reviewed["words"],
        "confidence": reviewed["confidence"],
        "flags": reviewed["flags"],
    }


def stream_jobs_heartbeat(*, job_ids: list) -> set:
    """Tell the database these sessions' worker is alive; return the ids of those whose
    owner asked to cancel or erase them (``POST …/cancel``, ``DELETE``): they end."""
    if not job_ids:
        return set()
    running = Job.objects.filter(pk__in=job_ids, status=Job.Status.PROCESSING)
    running.update(heartbeat_at=timezone.now())
    return set(running.filter(cancel_requested_at__isnull=False).values_list("pk", flat=True))


def _run_record(run: dict[str, Any]) -> RunRecord:
    """The session's run record; a session that died before writing one gets a blank."""
    if run:
        return RunRecord(**run)
    return RunRecord(PIPELINE_VERSION, "", "", "", "", 0, "", "", 0, {}, {})


def stream_result(
    job: Job, *, run: dict[str, Any], metrics: Metrics, review: Review
) -> dict[str, Any]:
    """The session's transcript, built and post-processed as a file job's result is."""
    segments = tuple(stored_segment(row) for row in job.stream_segments.order_by("index"))
    duration = max((s.end for s in segments), default=0.0)
    transcript = Transcript(
        language=job.language or run.get("decoding", {}).get("language") or "unknown",
        language_probability=1.0,
        duration_s=round(max(duration, metrics.audio_duration_s), 3),
        segments=segments,
        speech=(),
        run=_run_record(run),
        metrics=metrics,
    )
    return post_process(
        transcript.to_dict(),
        mode=review.mode,
        terms=review.terms,
        rules=review.rules,
        phrases=review.phrases,
    )


def stream_job_finish(
    *,
    job_id,
    run: dict[str, Any],
    metrics: Metrics,
    review: Review,
    language: str = "",
    note: str = "",
) -> None:
    """Close a session's job as completed, with its result stored like a file job's."""
    job = Job.objects.get(pk=job_id)
    if job.is_terminal:
        return
    if language:
        job.language = language
    result = stream_result(job, run=run, metrics=metrics, review=review)
    path = storage.result_save(job.id, json.dumps(result, ensure_ascii=False))
    done = {"result_path": path, "language": result["language"], "run": run}
    metrics_dict = asdict(metrics)
    if note:
        ended = job.mark_interrupted(**done, metrics=metrics_dict, reason=note)
    else:
        ended = job.mark_completed(**done, metrics=metrics_dict)
    if not ended:
        storage.delete_quietly(path)


def stream_job_recover(*, job: Job) -> None:
    """A session whose worker died: keep what was finalised, as a completed job."""
    review = session_review(owner_id=job.owner_id, options=job.opts)
    last = job.stream_segments.order_by("-index").values_list("end", flat=True).first() or 0.0
    stream_job_finish(
        job_id=job.id,
        run=job.run or {},
        language=job.language,
        review=review,
        metrics=Metrics.measured(
            duration_s=last, processing_s=0.0, speech_s=0.0, confidences=(), windows=0, vad=False
        ),
        note="The realtime worker stopped during the session; the transcript holds every "
        "final sent before that.",
    )
