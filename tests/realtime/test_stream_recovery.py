from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone

from glossary.review import Review
from realtime import services as stream_services
from realtime.live_types import FinalSegment, TimedWord
from tests.conftest import result_json
from transcription import erasure, recovery
from transcription.engine import run_record
from transcription.models import Job
from transcription.options import JobOptions

pytestmark = pytest.mark.django_db(transaction=True)


def final(index: int, start: float, text: str) -> FinalSegment:
    words = tuple(
        TimedWord(start + i * 0.5, start + (i + 1) * 0.5, f" {w}", 0.8)
        for i, w in enumerate(text.split())
    )
    return FinalSegment(index, start, words[-1].end, text, words, 0.8)


def test_a_session_whose_worker_died_keeps_its_finals_as_a_completed_job(
    owner_key, api, job_settings, loaded_model, settings
):
    key, _ = owner_key
    job = stream_services.stream_job_create(
        owner_id=key.owner_id, options=JobOptions(language="ko")
    )
    Job.objects.filter(pk=job.pk).update(
        run=dataclasses.asdict(run_record(loaded_model, {"lane": "realtime"})),
        worker_host="gone-host",
        worker_pid=4242,
    )
    review = Review()
    stream_services.stream_final_save(
        job_id=job.id, final=final(0, 0.0, "vLLM 서빙 시작"), review=review
    )
    stream_services.stream_final_save(
        job_id=job.id, final=final(1, 3.0, "latency 확인"), review=review
    )
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.SCRIBE_STALE_AFTER_S + 1)
    )

    assert recovery.jobs_recover() == 1

    job.refresh_from_db()
    assert job.status == "completed" and job.error_code == "interrupted"
    body = api.get(f"/v1/jobs/{job.id}").json()
    assert body["kind"] == "stream" and body["status"] == "completed"
    assert body["interrupted"]["code"] == "interrupted"
    assert "realtime worker stopped" in body["interrupted"]["message"]
    srt = api.get(f"/v1/jobs/{job.id}/result?format=srt").content.decode()
    assert srt == (
        "1\n00:00:00,000 --> 00:00:01,500\nvLLM 서빙 시작\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\nlatency 확인\n"
    )


def test_a_live_session_is_not_recovered(owner_key, job_settings):
    key, _ = owner_key
    job = stream_services.stream_job_create(owner_id=key.owner_id, options=JobOptions())

    assert recovery.jobs_recover() == 0
    assert Job.objects.get(pk=job.pk).status == "processing"


def test_the_realtime_heartbeat_keeps_live_sessions_from_recovery_and_skips_ended_ones(
    owner_key, job_settings, settings
):
    key, _ = owner_key
    live = stream_services.stream_job_create(owner_id=key.owner_id, options=JobOptions())
    ended = stream_services.stream_job_create(owner_id=key.owner_id, options=JobOptions())
    silent_since = timezone.now() - timedelta(seconds=settings.SCRIBE_STALE_AFTER_S + 5)
    Job.objects.filter(pk__in=[live.pk, ended.pk]).update(
        heartbeat_at=silent_since, worker_host="another-host"
    )
    Job.objects.filter(pk=ended.pk).update(status=Job.Status.COMPLETED)

    stream_services.stream_jobs_heartbeat(job_ids=[live.id, ended.id])

    assert timezone.now() - Job.objects.get(pk=live.pk).heartbeat_at < timedelta(seconds=5)
    assert Job.objects.get(pk=ended.pk).heartbeat_at == silent_since
    assert recovery.jobs_recover() == 0
    assert Job.objects.get(pk=live.pk).status == "processing"


def test_a_final_that_is_a_hallucination_is_stored_flagged_but_never_sent_or_transcribed(
    owner_key, api, job_settings, loaded_model
):
    key, _ = owner_key
    job = stream_services.stream_job_create(owner_id=key.owner_id, options=JobOptions())
    Job.objects.filter(pk=job.pk).update(
        run=dataclasses.asdict(run_record(loaded_model, {"lane": "realtime"}))
    )
    review = stream_services.session_review(owner_id=key.owner_id, options=JobOptions())

    sent = stream_services.stream_final_save(
        job_id=job.id, final=final(0, 0.0, "배포 끝났습니다"), review=review
    )
    invented = stream_services.stream_final_save(
        job_id=job.id, final=final(1, 2.0, "시청해주셔서 감사합니다"), review=review
    )
    stream_services.stream_job_recover(job=Job.objects.get(pk=job.pk))

    assert sent is not None and sent["text"] == "배포 끝났습니다"
    assert invented is None
    stored = job.stream_segments.get(index=1)
    assert stored.flags == ["known_hallucination"]
    result = result_json(api.get(f"/v1/jobs/{job.id}/result?format=json"))
    assert result["text"] == "배포 끝났습니다"
    assert [s["flags"] for s in result["suppressed_segments"]] == [["known_hallucination"]]


def test_a_sessions_glossary_applies_only_while_its_owner_owns_it(owner_key, job_settings):
    from accounts.models import Owner
    from glossary.models import Glossary, Term

    key, _ = owner_key
    glossary = Glossary.objects.create(owner_id=key.owner_id, name="infra")
    Term.objects.create(glossary=glossary, canonical="Kubernetes", variants=["쿠버네티스"])

    owned = stream_services.session_review(
        owner_id=key.owner_id, options=JobOptions(glossary_id=glossary.pk)
    )
    Glossary.objects.filter(pk=glossary.pk).update(owner=Owner.objects.create(name="other"))
    handed_over = stream_services.session_review(
        owner_id=key.owner_id, options=JobOptions(glossary_id=glossary.pk)
    )

    assert [t.canonical for t in owned.terms] == ["Kubernetes"]
    assert handed_over.terms == []


def test_retention_purges_a_live_sessions_finals_with_its_result(owner_key, job_settings):
    key, _ = owner_key
    job = stream_services.stream_job_create(owner_id=key.owner_id, options=JobOptions())
    review = stream_services.session_review(owner_id=key.owner_id, options=JobOptions())
    stream_services.stream_final_save(
        job_id=job.id, final=final(0, 0.0, "vLLM 서빙 시작"), review=review
    )
    stream_services.stream_job_recover(job=Job.objects.get(pk=job.pk))
    assert job.stream_segments.count() == 1

    later = timezone.now() + timedelta(days=job_settings.SCRIBE_RETENTION_DAYS + 1)
    assert erasure.retention_purge(now=later) == (1, 0)

    assert job.stream_segments.count() == 0
    assert Job.objects.get(pk=job.pk).result_purged_at is not None


def test_a_recovered_session_keeps_the_post_correction_it_chose(owner_key, api, job_settings):
    from glossary.models import Glossary, Rule

    key, _ = owner_key
    glossary = Glossary.objects.create(owner_id=key.owner_id, name="live")
    Rule.objects.create(
        glossary=glossary, kind="literal", pattern="vLLM", replacement="VLLM", enabled=True
    )
    options = JobOptions(glossary_id=glossary.pk, post_correction="none")
    job = stream_services.stream_job_create(owner_id=key.owner_id, options=options)
    stream_services.stream_final_save(
        job_id=job.id, final=final(0, 0.0, "vLLM 서빙 시작"), review=Review()
    )

    stream_services.stream_job_recover(job=Job.objects.get(pk=job.pk))

    result = result_json(api.get(f"/v1/jobs/{job.id}/result?format=json"))
    assert result["text"] == "vLLM 서빙 시작"
    assert result["post_correction"]["mode"] == "none"
