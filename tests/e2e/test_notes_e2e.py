"""Notes, keywords and live keywords on real processes: daphne, the batch workers, the
notes queue's workers (``qcluster --name notes``) and the realtime worker, on PostgreSQL
and Redis, with the loopback OpenAI-compatible server (tests/llm.py) as the LLM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import httpx
import pytest
from jsonschema import Draft202012Validator

from realtime.client import stream_file
from tests.conftest import require_service, shared_clip
from tests.e2e.stack import Stack, daphne_serving
from tests.e2e.test_jobs_e2e import wait_for
from tests.llm import FakeLLM
from tests.media import write_tone_wav

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def notes_stack(tmp_path, model_dir, llm: FakeLLM):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    with Stack(
        tmp_path,
        model_dir,
        realtime_worker=True,
        notes_workers=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}",
        SCRIBE_WORKERS="1",
        SCRIBE_LLM_BASE_URL=llm.base_url,
        SCRIBE_LIVE_KEYWORDS_INTERVAL_S="1",
    ) as running:
        running.key = running.manage(
            "create_api_key", "--owner", "notes", "--scopes", "transcribe", "stream"
        ).strip()
        yield running


@pytest.fixture(scope="module")
def llm():
    with FakeLLM(ignore_schema_first=True) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_dir, llm):
    """One stack for the tests that keep its LLM up (each starts its own jobs)."""
    with notes_stack(tmp_path_factory.mktemp("notes"), model_dir, llm) as running:
        yield running


def submitted(client: httpx.Client, path, options: dict) -> str:
    with path.open("rb") as handle:
        created = client.post(
            "/v1/jobs", files={"file": (path.name, handle)}, data={"options": json.dumps(options)}
        )
    assert created.status_code == 202, created.text
    return created.json()["job_id"]


def note_ended(client: httpx.Client, job_id: str, name: str) -> dict:
    def ended():
        job = client.get(f"/v1/jobs/{job_id}").json()
        entry = job["notes"][name] if name != "keywords" else job["keywords"]
        return entry if entry["status"] != "pending" else None

    return wait_for(ended, 120, f"the {name} of job {job_id}")


def engine_runs(stack: Stack, job_id: str) -> int:
    """Transcriptions of ``job_id`` the batch workers ran (django-q2's record of tasks,
    named as transcription.services.job_task_name names them)."""
    return stack.sql("SELECT count(*) FROM django_q_task WHERE name = %s", f"job-{job_id}")[0][0]


def test_notes_and_keywords_after_the_transcript_then_another_template_without_transcribing(
    stack, llm, tmp_path
):
    audio = write_tone_wav(tmp_path / "meeting.wav", seconds=3.0)
    with stack.client() as client:
        job_id = submitted(
            client, audio, {"notes": {"template": "meeting_notes"}, "keywords": True}
        )
        wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "completed", 120, "job"
        )
        notes = note_ended(client, job_id, "meeting_notes")
        keywords = note_ended(client, job_id, "keywords")
        schema = client.get("/v1/templates/meeting_notes").json()["schema"]

        assert notes["status"] == "completed" and notes["attempts"] == 2, notes
        assert not list(Draft202012Validator(schema).iter_errors(notes["data"]))
        assert keywords["status"] == "completed", keywords

        again = client.post(f"/v1/jobs/{job_id}/notes", json={"template": "call_summary"})
        assert again.status_code == 202, again.text
        summary = note_ended(client, job_id, "call_summary")
        assert summary["status"] == "completed", summary
        markdown = client.get(f"/v1/jobs/{job_id}/result?format=md").text
        assert "## Call summary" in markdown and "## Meeting notes" in markdown

    assert engine_runs(stack, job_id) == 1


def test_the_llm_stopped_leaves_the_transcript_and_the_notes_say_why(tmp_path, model_dir):
    audio = write_tone_wav(tmp_path / "call.wav", seconds=3.0)
    with FakeLLM() as stopping, notes_stack(tmp_path, model_dir, stopping) as stack:
        stopping.__exit__(None, None, None)  # the LLM server goes away
        client = stack.client()
        job_id = submitted(client, audio, {"notes": {"template": "call_summary"}})
        wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "completed", 120, "job"
        )
        assert client.get(f"/v1/jobs/{job_id}/result?format=txt").status_code == 200
        failed = note_ended(client, job_id, "call_summary")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "llm_unavailable", failed


def test_an_llm_host_off_the_allowlist_is_refused_at_submission(stack, tmp_path):
    env = {**stack.env, "SCRIBE_LLM_ALLOWED_HOSTS": "llm.internal"}
    audio = write_tone_wav(tmp_path / "refused.wav", seconds=1.0)
    with daphne_serving(env, tmp_path / "refusing-daphne.log") as port, audio.open("rb") as handle:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/jobs",
            headers={"Authorization": f"Bearer {stack.key}"},
            files={"file": ("refused.wav", handle)},
            data={"options": json.dumps({"keywords": True})},
            timeout=30,
        )
    assert response.status_code == 400
    assert "SCRIBE_LLM_ALLOWED_HOSTS" in response.text


def test_erasing_a_job_leaves_no_note_behind(stack, tmp_path):
    audio = write_tone_wav(tmp_path / "erased.wav", seconds=3.0)
    with stack.client() as client:
        job_id = submitted(client, audio, {"notes": {"template": "meeting_notes"}})
        wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "completed", 120, "job"
        )
        note_ended(client, job_id, "meeting_notes")
        assert stack.sql("SELECT count(*) FROM notes_note WHERE job_id = %s", job_id)[0][0] == 1
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert stack.sql("SELECT count(*) FROM notes_note WHERE job_id = %s", job_id)[0][0] == 0


def test_a_live_session_with_keywords_gets_keywords_events(stack):
    run = asyncio.run(
        stream_file(
            f"ws://127.0.0.1:{stack.port}/v1/stream",
            stack.key,
            shared_clip("jfk.flac"),
            speed=1.0,
            options={"language": "en", "keywords": True},
        )
    )
    kinds = [e["type"] for e in run.events]
    assert kinds[-1] == "closed" and run.finals, kinds
    keywords = [e for e in run.events if e["type"] == "keywords"]
    assert keywords, kinds
    assert all(
        set(k) == {"text", "category", "count", "first_seen"} for k in keywords[-1]["keywords"]
    )
