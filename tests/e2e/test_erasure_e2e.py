"""Issue 25's canary: after DELETE and after the retention purge, no word of a transcript is
left in any text or JSON column of any table of PostgreSQL (decoded: django-q2 keeps task
arguments and results pickled and signed), in the storage, or in the workers' temp
directory. Real processes (daphne, qcluster, the realtime worker) on the real tiny.en: a
glossary file job (its run record keeps the first pass's text), a live session (its
finals), a callback (its delivery body), and a Deepgram ``POST /v1/listen`` with a callback
(its delivery body is Deepgram's response: the transcript and every word)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pickle
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from realtime.client import stream_file
from tests.conftest import require_service, shared_clip
from tests.e2e.stack import Stack, free_port
from tests.e2e.test_jobs_e2e import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.real_model, pytest.mark.shared_audio]

PROMPT = "Quokkafest minutes"
COLUMN_TYPES = ("text", "character varying", "json", "jsonb", "bytea")


def readable(value) -> str:
    """A stored value as text, with every encoding scribe's libraries store text in undone:
    JSON (non-ASCII escaped), pickles in base64 (django-picklefield), signed pickles
    (django-q2's broker payloads)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    found = [value]
    with contextlib.suppress(Exception):
        found.append(json.dumps(json.loads(value), ensure_ascii=False))
    for token, compressed in ((value, False), (value.split(":")[0], value.startswith("."))):
        with contextlib.suppress(Exception):
            raw = base64.urlsafe_b64decode(token.lstrip(".") + "=" * (-len(token) % 4))
            if compressed:
                raw = zlib.decompress(raw)
            found.append(repr(pickle.loads(raw)))  # noqa: S301 - our own database's rows
        with contextlib.suppress(Exception):
            found.append(repr(pickle.loads(base64.b64decode(token))))  # noqa: S301
    return "\n".join(found)


def database_hits(stack: Stack, needles: set[str]) -> list[str]:
    hits = []
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = ANY(%s)",
            (list(COLUMN_TYPES),),
        ).fetchall()
        assert len(columns) > 50, columns  # every table of every app, not a few
        for table, column in columns:
            query = sql.SQL("SELECT {} FROM {}").format(
                sql.Identifier(column), sql.Identifier(table)
            )
            for (value,) in conn.execute(query):
                if value is None:
                    continue
                text = readable(value).lower()
                hits += [f"{table}.{column}: {n}" for n in needles if n in text]
    return hits


def file_hits(roots: list[Path], needles: set[str], job_ids: list[str]) -> list[str]:
    hits = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            text = path.read_bytes().decode("utf-8", "replace").lower()
            hits += [f"{path}: {n}" for n in needles if n in text]
            hits += [f"{path}: job {j}" for j in job_ids if j in str(path)]
    return hits


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def stack(tmp_path, real_model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    (tmp_path / "tmp").mkdir()
    with Stack(
        tmp_path,
        real_model_dir,
        realtime_worker=True,
        REDIS_URL=f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}",
        SCRIBE_WORKERS="1",
        SCRIBE_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        TMPDIR=str(tmp_path / "tmp"),
    ) as running:
        running.key = running.manage(
            "create_api_key", "--owner", "canary", "--scopes", "transcribe", "stream", "glossary"
        ).strip()
        running.manage(
            "shell",
            "-c",
            "from accounts.models import Owner; from webhooks.services import "
            "webhook_secret_rotate as r; r(owner=Owner.objects.get(name='canary'))",
        )
        yield running


def said(stack: Stack, receiver: Receiver) -> tuple[list[str], set[str]]:
    """A glossary file job with a callback, a live session and a Deepgram request with a
    callback, all of jfk.flac: their ids, and the words of their transcripts (six letters
    or more) and of the prompt."""
    clip = shared_clip("jfk.flac")
    with stack.client() as client:
        glossary = client.post(
            "/v1/glossaries",
            json={"name": f"infra-{free_port()}", "terms": [{"canonical": "Kubernetes"}]},
        )
        assert glossary.status_code in (200, 201), glossary.text
        options = {
            "language": "en",
            "prompt": PROMPT,
            "hotwords": ["Quokkafest"],
            "glossary_id": glossary.json()["id"],
            "callback_url": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        }
        with clip.open("rb") as handle:
            created = client.post(
                "/v1/jobs",
                files={"file": ("quokkafest-speech.flac", handle)},
                data={"options": json.dumps(options)},
            )
        assert created.status_code == 202, created.text
        file_job = created.json()["job_id"]
        run = asyncio.run(
            stream_file(
                f"ws://127.0.0.1:{stack.port}/v1/stream",
                stack.key,
                clip,
                speed=4.0,
                options={"language": "en", "hotwords": ["Quokkafest"]},
            )
        )
        live_job = run.events[-1]["job_id"]
        assert run.finals, run.events
        hook = f"http://127.0.0.1:{receiver.server_address[1]}/deepgram"
        deepgram = client.post(
            "/v1/listen",
            params={"callback": hook, "keyterm": "Quokkafest", "utterances": "true"},
            content=clip.read_bytes(),
            headers={"Content-Type": "audio/flac"},
        )
        assert deepgram.status_code == 200, deepgram.text
        deepgram_job = deepgram.json()["request_id"]
        for job in (file_job, live_job, deepgram_job):
            wait_for(
                lambda job=job: client.get(f"/v1/jobs/{job}").json()["status"] == "completed",
                300,
                f"job {job}",
            )
        delivered = "SELECT count(*) FROM webhooks_delivery WHERE job_id = %s AND status = %s"
        for job in (file_job, deepgram_job):
            wait_for(lambda job=job: stack.sql(delivered, job, "delivered")[0][0], 120, "callback")
        jobs = [file_job, live_job, deepgram_job]
        text = " ".join(client.get(f"/v1/jobs/{job}/result?format=txt").text for job in jobs)
        [(body,)] = stack.sql("SELECT body FROM webhooks_delivery WHERE job_id = %s", deepgram_job)
    words = {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 6}
    assert words, text
    assert '"punctuated_word"' in body and any(w in body.lower() for w in words), body
    return jobs, words | {"quokkafest"}


def test_no_word_of_a_transcript_is_left_after_delete_or_after_the_purge(stack, tmp_path):
    roots = [stack.media, tmp_path / "tmp"]
    with Receiver() as receiver:
        jobs, needles = said(stack, receiver)
        # The search finds what is there: the run record, the finals, the delivery body.
        before = database_hits(stack, needles)
        assert any(h.startswith("transcription_job.run") for h in before), before
        assert any(h.startswith("realtime_streamsegment.text") for h in before), before
        assert any(h.startswith("webhooks_delivery.body") for h in before), before
        assert file_hits(roots, needles, jobs)

        with stack.client() as client:
            for job in jobs:
                assert client.delete(f"/v1/jobs/{job}").status_code == 204
                assert client.get(f"/v1/jobs/{job}/result").json()["error"]["code"] == "erased"
        assert database_hits(stack, needles) == []
        assert file_hits(roots, needles, jobs) == []

        purged, needles = said(stack, receiver)
        stack.manage(
            "shell",
            "-c",
            "from datetime import timedelta; from django.utils import timezone; "
            "from transcription.erasure import retention_purge; "
            "print(retention_purge(now=timezone.now() + timedelta(days=8)))",
        )
        assert database_hits(stack, needles) == []
        assert file_hits(roots, needles, purged) == []
        receiver.shutdown()
