"""POST /v1/audio/transcriptions and GET /v1/models through Django's test client, with the
real job service run by an in-process worker thread (the live SDK tests are in tests/e2e)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache

from accounts.services import api_key_create
from glossary.models import Glossary
from realtime.models import StreamSegment
from tests.conftest import shared_clip
from tests.media import write_wav
from transcription import runner, storage
from transcription.engine.audio import decode_all
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/audio/transcriptions"


def post(api, path: Path, **fields):
    with path.open("rb") as handle:
        return api.post(URL, {"file": handle, **fields}, format="multipart")


@pytest.fixture
def speech() -> Path:
    return shared_clip("jfk.flac")


@pytest.fixture
def worker(job_settings):
    """A worker thread doing what a django-q2 worker does: take each queued job, run it."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for job_id in Job.objects.queued().values_list("id", flat=True):
                runner.job_process(job_id=str(job_id))
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_models_are_listed_in_openais_shape(api, job_settings):
    body = api.get("/v1/models").json()

    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "whisper-1" and "batch" in ids and "micro" in ids
    assert str(job_settings.SCRIBE_BATCH_MODEL) not in ids  # a directory: its name, not its path
    assert all(m["object"] == "model" and m["owned_by"] == "scribe" for m in body["data"])


def test_a_request_without_a_valid_key_gets_401_in_openais_shape(client, job_settings, speech):
    response = client.post(URL, {"file": speech.open("rb"), "model": "whisper-1"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    wrong = client.get("/v1/models", HTTP_AUTHORIZATION="Bearer sk_nope.nope")
    assert wrong.status_code == 401 and error_of(wrong)["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_400_naming_the_served_models(api, job_settings, speech):
    response = post(api, speech, model="gpt-4o-transcribe")

    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "model" and error["type"] == "invalid_request_error"
    assert "whisper-1" in error["message"] and "batch" in error["message"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities"),
        ({"response_format": "xml"}, "response_format"),
        ({"temperature": "3"}, "temperature"),
        ({"language": "klingon"}, "language"),
        ({"include[]": "logprobs"}, "include"),
        ({"glossary_id": "999"}, "glossary_id"),
    ],
)
def test_bad_fields_are_400s_naming_the_field(api, job_settings, speech, fields, param):
    response = post(api, speech, model="whisper-1", **fields)

    assert response.status_code == 400, response.content
    assert error_of(response)["param"] == param


def test_a_job_not_done_within_the_wait_answers_504_pointing_to_it(api, job_settings, speech):
    job_settings.SCRIBE_OPENAI_WAIT_S = 1  # and no worker: the job stays queued

    response = post(
        api,
        speech,
        model="whisper-1",
        response_format="verbose_json",
        prompt="President Kennedy.",
        temperature="0.3",
        **{"timestamp_granularities[]": ["word", "segment"], "hotwords": "Kennedy, Berlin"},
    )

    assert response.status_code == 504
    assert response["x-should-retry"] == "false"  # the SDK must not upload it again
    job = Job.objects.get()
    assert response["X-Scribe-Job-Id"] == str(job.id)
    error = error_of(response)
    assert error["code"] == "job_still_running" and f"/v1/jobs/{job.id}" in error["message"]
    # Both spellings of array fields, and the extras, reached the job's options.
    assert job.options["model"] == "batch" and job.options["word_timestamps"] is True
    assert job.options["hotwords"] == ["Kennedy", "Berlin"]
    assert job.options["prompt"] == "President Kennedy." and job.options["temperature"] == 0.3
    # and the decoder ran with them.
    runner.job_process(job_id=str(job.id))
    job.refresh_from_db()
    decoding = json.loads(storage.result_read(job.result_path))["run"]["decoding"]
    assert decoding["temperature"] == [0.3] and decoding["word_timestamps"] is True
    assert decoding["initial_prompt"].startswith("President Kennedy.")


def test_an_upload_over_the_limit_is_a_413_in_openais_shape(api, job_settings, tmp_path):
    job_settings.SCRIBE_MAX_UPLOAD_MB = 1
    big = write_wav(tmp_path / "big.wav", np.zeros(16000 * 40))  # 1.3 MB

    response = post(api, big, model="whisper-1")

    assert response.status_code == 413
    assert error_of(response)["code"] == "upload_too_large"


def test_the_rate_limit_is_a_429_in_openais_shape(api, job_settings):
    job_settings.SCRIBE_RATE_LIMIT = "2/minute"
    cache.clear()
    statuses = [api.get("/v1/models").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    limited = api.get("/v1/models")
    assert error_of(limited)["type"] == "rate_limit_error" and limited["Retry-After"]
    cache.clear()


def test_a_transcription_answers_in_every_response_format(api, worker, speech):
    as_json = post(api, speech, model="whisper-1", language="en")
    assert as_json.status_code == 200, as_json.content
    body = as_json.json()
    assert set(body) == {"text", "usage"} and body["text"]
    assert body["usage"] == {"type": "duration", "seconds": 11}

    text = post(api, speech, model="batch", response_format="text")
    assert text["Content-Type"].startswith("text/plain")
    assert text.content.decode().strip()

    srt = post(api, speech, model="whisper-1", response_format="srt").content.decode()
    assert srt.startswith("1\n00:00:")
    vtt = post(api, speech, model="whisper-1", response_format="vtt").content.decode()
    assert vtt.startswith("WEBVTT")

    verbose = post(api, speech, model="whisper-1", response_format="verbose_json").json()
    assert verbose["task"] == "transcribe" and verbose["duration"] == pytest.approx(11.0, abs=0.01)
    assert "words" not in verbose  # only when asked
    segment = verbose["segments"][0]
    assert set(segment) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
        "compression_ratio", "no_speech_prob",
    }  # fmt: skip
    assert segment["tokens"] and all(isinstance(t, int) for t in segment["tokens"])
    assert segment["seek"] == round(segment["start"] * 100)
    assert verbose["text"].strip() == " ".join(s["text"].strip() for s in verbose["segments"])

    words_only = post(
        api,
        speech,
        model="whisper-1",
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    ).json()
    assert "segments" not in words_only and words_only["words"]
    assert set(words_only["words"][0]) == {"word", "start", "end"}
    assert all(w["start"] <= w["end"] <= 11.01 for w in words_only["words"])


def sse_events(response) -> list[tuple[str, dict]]:
    async def read() -> bytes:  # the view streams from an async generator (ASGI)
        return b"".join([chunk async for chunk in response.streaming_content])

    raw = async_to_sync(read)().decode()
    events = []
    for block in raw.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.fixture
def long_speech(tmp_path) -> Path:
    """Two minutes of speech: the micro model's first segment is written a few seconds
    before the job ends, so the stream reads it from the worker's partial segments."""
    clip = decode_all(shared_clip("multilingual.mp3"))
    return write_wav(tmp_path / "long.wav", np.concatenate([clip, clip]))


def test_stream_sends_a_delta_per_segment_then_done(api, worker, long_speech):
    response = post(api, long_speech, model="whisper-1", stream="true")

    assert response["Content-Type"] == "text/event-stream"
    events = sse_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    done = events[-1][1]
    deltas = "".join(data["delta"] for _, data in events[:-1])
    assert deltas == done["text"] and done["usage"]["seconds"] == 120
    job = Job.objects.get()
    assert job.status == Job.Status.COMPLETED
    assert len(events) - 1 == len(json.loads(storage.result_read(job.result_path))["segments"])


def test_a_running_job_writes_its_segments_as_it_goes_and_drops_them_at_the_end(
    api, job_settings, long_speech
):
    job_settings.SCRIBE_OPENAI_WAIT_S = 1
    assert post(api, long_speech, model="whisper-1").status_code == 504
    job = Job.objects.get()
    seen: list[int] = []

    def watch() -> None:
        while not Job.objects.filter(pk=job.pk, status__in=Job.TERMINAL).exists():
            seen.append(StreamSegment.objects.filter(job=job).count())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    runner.job_process(job_id=str(job.id))
    watcher.join()

    assert max(seen) > 0  # partial segments were visible while it ran
    assert not StreamSegment.objects.filter(job=job).exists()  # and gone once it ended


def test_a_failed_job_is_an_error_event_on_the_stream(api, worker, job_settings, speech):
    job_settings.SCRIBE_BATCH_MODEL = "/nonexistent/model"  # the worker fails the job

    events = sse_events(post(api, speech, model="whisper-1", stream="true"))

    kind, data = events[-1]
    assert kind == "error" and data["error"]["type"] == "server_error"
    assert data["error"]["message"] == Job.objects.get().error_message


def test_the_job_is_the_callers_and_another_owners_glossary_is_refused(api, job_settings, speech):
    other_key, other_secret = api_key_create(owner_name="outsider", scopes=["transcribe"])
    theirs = Glossary.objects.create(owner=other_key.owner, name="theirs")
    refused = post(api, speech, model="whisper-1", glossary_id=str(theirs.pk))
    assert refused.status_code == 400 and error_of(refused)["param"] == "glossary_id"

    job_settings.SCRIBE_OPENAI_WAIT_S = 1
    job_id = post(api, speech, model="whisper-1")["X-Scribe-Job-Id"]
    assert api.get(f"/v1/jobs/{job_id}").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other_secret}")
    assert api.get(f"/v1/jobs/{job_id}").status_code == 404
