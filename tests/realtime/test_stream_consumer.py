"""/v1/stream over Channels' WebsocketCommunicator, with the in-process worker and the
random-weight model on real speech."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from unittest import mock

import numpy as np
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.storage import FileSystemStorage

from accounts.services import api_key_create, api_key_revoke
from realtime.models import StreamSegment
from realtime.worker import RealtimeWorker
from tests.conftest import result_json, shared_clip
from transcription.engine.audio import decode_all
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stream_settings(job_settings, model_dir):
    job_settings.SCRIBE_REALTIME_MODEL = str(model_dir)
    job_settings.SCRIBE_REALTIME_IN_PROCESS = True
    return job_settings


@pytest.fixture
def stream_key(stream_settings):
    return api_key_create(owner_name="meetings", scopes=["stream", "transcribe"])


class Communicator(WebsocketCommunicator):
    """The first handshake waits for the in-process worker to load and measure its model
    (seconds on a busy machine), not the 1 s Channels' communicator allows by default."""

    async def connect(self, timeout: float = 30):
        return await super().connect(timeout=timeout)


def communicator(secret: str | None = None, *, path: str = "/v1/stream", subprotocols=None):
    from scribe.asgi import application

    headers = [(b"authorization", f"Bearer {secret}".encode())] if secret else []
    return Communicator(application, path, headers=headers, subprotocols=subprotocols)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def receive_until(comm, kind: str, timeout: float = 60) -> list[dict]:
    events = []
    while True:
        event = json.loads(await comm.receive_from(timeout=timeout))
        events.append(event)
        if event["type"] == kind:
            return events


async def stream_audio(comm, audio: np.ndarray, chunk_s: float = 0.5, pause_s: float = 0.05):
    chunk = int(chunk_s * 16000)
    for start in range(0, audio.shape[0], chunk):
        await comm.send_to(bytes_data=pcm16(audio[start : start + chunk]))
        await asyncio.sleep(pause_s)


async def open_started(secret: str, count: int) -> tuple[list, list[dict]]:
    """``count`` started sessions: their communicators and their ``ready`` events."""
    comms, readies = [], []
    for _ in range(count):
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"language": "en"}})
        comms.append(comm)
    for comm in comms:
        readies.append((await receive_until(comm, "ready"))[-1])
    return comms, readies


def running_worker() -> RealtimeWorker:
    """The in-process realtime worker of the running event loop.

    Channels builds the consumer instance inside its application task and keeps no
    reference to it, so it is found among live objects by the loop its tasks run on.
    """
    loop = asyncio.get_running_loop()
    workers = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, RealtimeWorker) and any(t.get_loop() is loop for t in obj.tasks)
    ]
    assert len(workers) == 1
    return workers[0]


def test_a_session_goes_ready_partial_final_closed_and_is_kept_as_a_job(stream_key, api):
    _, secret = stream_key
    speech = decode_all(shared_clip("jfk.flac"))

    async def scenario():
        comm = communicator(secret)
        connected, _ = await comm.connect()
        assert connected
        await comm.send_json_to({"type": "start", "options": {"language": "en"}})
        ready = json.loads(await comm.receive_from(timeout=60))
        await stream_audio(comm, speech)
        await comm.send_json_to({"type": "stop"})
        events = await receive_until(comm, "closed")
        await comm.wait()
        return ready, events

    ready, events = asyncio.run(scenario())

    assert ready["type"] == "ready" and ready["session_id"] and ready["job_id"]
    kinds = [e["type"] for e in events]
    assert "partial" in kinds and "final" in kinds
    assert kinds[-1] == "closed" and events[-1]["job_id"] == ready["job_id"]
    assert kinds.index("partial") < len(kinds) - 1
    finals = [e["segment"] for e in events if e["type"] == "final"]
    assert [f["id"] for f in finals] == list(range(len(finals)))
    assert all(0 <= f["start"] <= f["end"] <= 11.1 for f in finals)
    assert all(
        set(f) == {"id", "start", "end", "text", "words", "confidence", "flags"} for f in finals
    )

    job = Job.objects.get(pk=ready["job_id"])
    assert (job.kind, job.status) == ("stream", "completed")
    assert StreamSegment.objects.filter(job=job).count() == len(finals)
    # Downloadable like any job, in every format, by a key of the same owner.
    owner_api = api.__class__()
    owner_api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    result = result_json(owner_api.get(f"/v1/jobs/{job.id}/result?format=json"))
    assert [s["text"].strip() for s in result["segments"]] == [f["text"] for f in finals]
    assert result["run"]["model_checksum"].startswith("sha256:")
    srt = owner_api.get(f"/v1/jobs/{job.id}/result?format=srt")
    assert srt.status_code == 200 and srt.content.startswith(b"1\n")


def test_deleting_a_live_sessions_job_ends_the_session_and_erases_its_finals(stream_key, api):
    _, secret = stream_key
    owner_api = api.__class__()
    owner_api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    speech = decode_all(shared_clip("jfk.flac"))

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"language": "en"}})
        ready = (await receive_until(comm, "ready"))[-1]
        await stream_audio(comm, speech)
        erase = await database_sync_to_async(owner_api.delete)(f"/v1/jobs/{ready['job_id']}")
        events = await receive_until(comm, "closed", timeout=30)  # no stop sent
        await comm.wait()
        return ready["job_id"], erase, events

    job_id, erase, events = asyncio.run(scenario())

    assert erase.status_code == 202 and erase.json()["erase_requested_at"]
    assert any(e["type"] == "error" and e["code"] == "cancelled" for e in events), events
    assert events[-1] == {"type": "closed", "job_id": job_id}
    job = Job.objects.get(pk=job_id)
    assert job.status == "completed" and job.erased_at is not None
    assert not StreamSegment.objects.filter(job=job).exists()
    assert owner_api.get(f"/v1/jobs/{job_id}/result").json()["error"]["code"] == "erased"


async def refusal(comm) -> tuple[dict, dict]:
    """Accept a refused handshake: the ``error`` event it sends, then its close."""
    connected, _ = await comm.connect()
    assert connected, "refusals are accepted first so that their close code reaches the client"
    error = json.loads(await comm.receive_from(timeout=10))
    return error, await comm.receive_output(timeout=10)


@pytest.mark.parametrize("scopes", [None, ["transcribe"]], ids=["no-key", "no-stream-scope"])
def test_a_handshake_without_a_stream_key_is_refused_with_an_error_and_a_close_code(
    stream_settings, scopes
):
    secret = api_key_create(owner_name="x", scopes=scopes)[1] if scopes else None

    error, closed = asyncio.run(refusal(communicator(secret)))

    assert error["type"] == "error"
    assert error["code"] == ("forbidden" if scopes else "unauthorized")
    assert ("'stream' scope" if scopes else "Authorization: Bearer") in error["message"]
    assert closed == {"type": "websocket.close", "code": 4403 if scopes else 4401}


def test_a_revoked_key_is_refused_at_the_handshake(stream_key):
    key, secret = stream_key
    api_key_revoke(key=key)

    error, closed = asyncio.run(refusal(communicator(secret)))

    assert error["code"] == "unauthorized"
    assert closed == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("form", ["query", "subprotocol"])
def test_browsers_can_send_the_key_in_the_query_or_a_subprotocol(stream_key, form):
    _, secret = stream_key

    async def scenario():
        if form == "query":
            comm = communicator(path=f"/v1/stream?api_key={secret}")
        else:
            comm = communicator(subprotocols=["scribe", f"key.{secret}"])
        result = await comm.connect()
        await comm.disconnect()
        return result

    connected, subprotocol = asyncio.run(scenario())

    assert connected is True
    assert subprotocol == ("scribe" if form == "subprotocol" else None)


def test_revoking_a_key_closes_its_open_session(stream_key):
    key, secret = stream_key

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {}})
        await receive_until(comm, "ready")
        await database_sync_to_async(api_key_revoke)(key=key)
        events = await receive_until(comm, "error", timeout=10)
        closed = await comm.receive_output(timeout=10)
        return events[-1], closed

    error, closed = asyncio.run(scenario())

    assert error["code"] == "key_revoked"
    assert closed == {"type": "websocket.close", "code": 4001}


def test_sessions_past_the_cap_are_refused_with_a_clear_code(stream_key, stream_settings):
    stream_settings.SCRIBE_REALTIME_MAX_SESSIONS = 1
    _, secret = stream_key

    async def scenario():
        first = communicator(secret)
        assert (await first.connect())[0]
        second = await refusal(communicator(secret))
        await first.disconnect()
        return second

    error, closed = asyncio.run(scenario())

    assert error["code"] == "session_limit" and "Retry later" in error["message"]
    assert closed == {"type": "websocket.close", "code": 4429}


def test_malformed_frames_get_errors_and_the_session_carries_on(stream_key):
    _, secret = stream_key
    speech = decode_all(shared_clip("jfk.flac"))[: 3 * 16000]

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        errors = []
        await comm.send_to(bytes_data=b"\x00\x01")  # audio before start
        errors.append(json.loads(await comm.receive_from()))
        await comm.send_json_to({"type": "start", "options": {"sample_rate": 12345}})
        errors.append(json.loads(await comm.receive_from()))
        await comm.send_json_to({"type": "start", "options": {}})
        await receive_until(comm, "ready")
        await comm.send_to(text_data="this is text, not audio")
        errors.append(json.loads(await comm.receive_from()))
        await comm.send_to(bytes_data=b"\x00\x01\x02")  # odd byte count for 16-bit samples
        errors.append(json.loads(await comm.receive_from()))
        await comm.send_json_to({"type": "dance"})
        errors.append(json.loads(await comm.receive_from()))
        await stream_audio(comm, speech)
        await comm.send_json_to({"type": "stop"})
        events = await receive_until(comm, "closed")
        return errors, events

    errors, events = asyncio.run(scenario())

    assert [e["code"] for e in errors] == [
        "not_started",
        "bad_options",
        "bad_message",
        "bad_frame",
        "bad_message",
    ]
    assert "sample_rate: 12345 Hz is not taken: send one of" in errors[1]["message"]
    assert events[-1]["type"] == "closed" and events[-1]["job_id"]


def test_a_bad_start_names_every_problem_at_once(stream_key):
    _, secret = stream_key

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to(
            {
                "type": "start",
                "options": {"sample_rate": 12345, "encoding": "mp3", "language": "xx"},
            }
        )
        error = json.loads(await comm.receive_from())
        await comm.disconnect()
        return error

    error = asyncio.run(scenario())

    assert error["code"] == "bad_options"
    for problem in ("language: 'xx'", "sample_rate: 12345 Hz", 'encoding: "mp3"'):
        assert problem in error["message"]


def test_stop_after_a_refused_start_closes_the_socket(stream_key):
    _, secret = stream_key

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"sample_rate": 12345}})
        refused = json.loads(await comm.receive_from())
        await comm.send_json_to({"type": "stop"})
        closed = json.loads(await comm.receive_from())
        return refused, closed, await comm.receive_output(timeout=10)

    refused, closed, close = asyncio.run(scenario())

    assert refused["code"] == "bad_options"
    assert closed == {"type": "closed", "job_id": None}
    assert close == {"type": "websocket.close", "code": 1000}


def test_audio_at_48khz_float32_is_accepted(stream_key):
    _, secret = stream_key
    t = np.arange(48000 * 2) / 48000
    tone = (0.2 * np.sin(2 * np.pi * 300 * t)).astype("<f4")

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to(
            {"type": "start", "options": {"sample_rate": 48000, "encoding": "f32le"}}
        )
        await receive_until(comm, "ready")
        for start in range(0, tone.shape[0], 4800):
            await comm.send_to(bytes_data=tone[start : start + 4800].tobytes())
        await comm.send_json_to({"type": "stop"})
        return await receive_until(comm, "closed")

    events = asyncio.run(scenario())

    job = Job.objects.get(pk=events[-1]["job_id"])
    assert job.metrics["audio_duration_s"] == pytest.approx(2.0, abs=0.01)


def test_a_glossary_corrects_finals_and_anothers_glossary_is_refused(stream_key):
    from accounts.models import Owner
    from glossary.models import Glossary, Rule

    key, secret = stream_key
    # Rules only: terms would bias the random model's decoding, and its nonsense has no
    # variants to map anyway (variants are covered by tests/glossary).
    mine = Glossary.objects.create(owner=key.owner, name="live")
    Rule.objects.create(
        glossary=mine, kind="regex", pattern=r"^(.*)$", replacement=r"\1 [checked]", enabled=True
    )
    theirs = Glossary.objects.create(owner=Owner.objects.create(name="other"), name="x")
    speech = decode_all(shared_clip("jfk.flac"))

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"glossary_id": theirs.pk}})
        refused = json.loads(await comm.receive_from())
        await comm.send_json_to({"type": "start", "options": {"glossary_id": mine.pk}})
        await receive_until(comm, "ready")
        await stream_audio(comm, speech)
        await comm.send_json_to({"type": "stop"})
        return refused, await receive_until(comm, "closed")

    refused, events = asyncio.run(scenario())

    assert refused["code"] == "bad_options" and "glossary" in refused["message"]
    finals = [e["segment"]["text"] for e in events if e["type"] == "final"]
    assert finals and all(text.endswith("[checked]") for text in finals)
    assert all(s.text.endswith("[checked]") for s in StreamSegment.objects.all())


def test_a_session_may_turn_correction_off_but_not_choose_the_llm(stream_key, api):
    from glossary.models import Glossary, Rule

    key, secret = stream_key
    mine = Glossary.objects.create(owner=key.owner, name="live")
    Rule.objects.create(
        glossary=mine, kind="regex", pattern=r"^(.*)$", replacement=r"\1 [checked]", enabled=True
    )
    speech = decode_all(shared_clip("jfk.flac"))

    async def scenario():
        comm = communicator(secret)
        assert (await comm.connect())[0]
        options = {"glossary_id": mine.pk, "post_correction": {"mode": "llm"}}
        await comm.send_json_to({"type": "start", "options": options})
        refused = json.loads(await comm.receive_from())
        options["post_correction"] = {"mode": "none"}
        await comm.send_json_to({"type": "start", "options": options})
        await receive_until(comm, "ready")
        await stream_audio(comm, speech)
        await comm.send_json_to({"type": "stop"})
        return refused, await receive_until(comm, "closed")

    refused, events = asyncio.run(scenario())

    assert refused["code"] == "bad_options" and "hold finals back" in refused["message"]
    finals = [e["segment"]["text"] for e in events if e["type"] == "final"]
    assert finals and not any(text.endswith("[checked]") for text in finals)
    assert all(s.text == s.raw_text for s in StreamSegment.objects.all())
    owner_api = api.__class__()
    owner_api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    result = result_json(owner_api.get(f"/v1/jobs/{events[-1]['job_id']}/result?format=json"))
    assert result["post_correction"]["mode"] == "none"
    assert not result["text"].endswith("[checked]")


def test_killing_the_scheduler_closes_every_session_with_4500(stream_key, stream_settings):
    stream_settings.SCRIBE_REALTIME_MAX_SESSIONS = 2
    _, secret = stream_key
    speech = decode_all(shared_clip("jfk.flac"))[: 2 * 16000]

    async def lost(comm) -> tuple[dict, dict]:
        events = await receive_until(comm, "error")  # partials and finals may come first
        return events[-1], await comm.receive_output()

    async def scenario():
        comms, readies = await open_started(secret, 2)
        await asyncio.gather(*(stream_audio(comm, speech) for comm in comms))
        running_worker().tasks[0].cancel()
        cancelled = time.monotonic()
        # Well inside the consumers' 10 s silence watchdog, which would say the same.
        ends = await asyncio.wait_for(asyncio.gather(*(lost(c) for c in comms)), timeout=5)
        elapsed = time.monotonic() - cancelled
        for _ in range(100):  # the worker keeps each transcript after telling the clients
            jobs = await database_sync_to_async(list)(
                Job.objects.filter(pk__in=[r["job_id"] for r in readies])
            )
            if all(job.status == "completed" for job in jobs):
                break
            await asyncio.sleep(0.1)
        return ends, elapsed, jobs

    ends, elapsed, jobs = asyncio.run(scenario())

    assert [error["code"] for error, _ in ends] == ["worker_lost", "worker_lost"]
    assert "failed" in ends[0][0]["message"], "told by the worker, not by the watchdog"
    assert [close for _, close in ends] == [{"type": "websocket.close", "code": 4500}] * 2
    assert elapsed < 5
    assert [(job.status, job.error_code) for job in jobs] == [("completed", "interrupted")] * 2


def test_a_storage_failure_in_one_session_leaves_the_other_served(stream_key, stream_settings):
    stream_settings.SCRIBE_REALTIME_MAX_SESSIONS = 2
    _, secret = stream_key
    speech = decode_all(shared_clip("jfk.flac"))
    half = speech.shape[0] // 2
    unwritable: set[str] = set()
    save = FileSystemStorage.save

    def save_or_fail(storage, name, content, max_length=None):
        if name in unwritable:
            raise OSError(28, "No space left on device")
        return save(storage, name, content, max_length)

    async def scenario():
        (first, second), readies = await open_started(secret, 2)
        unwritable.add(f"results/{readies[0]['job_id']}.json")
        await asyncio.gather(
            stream_audio(first, speech[:half]), stream_audio(second, speech[:half])
        )
        await first.send_json_to({"type": "stop"})
        first_events = await receive_until(first, "closed")
        first_close = await first.receive_output()
        # The random model's words are too few to count on an event per step: count the
        # second session's decodes instead.
        decoded_before = running_worker().sessions[readies[1]["session_id"]].steps
        await stream_audio(second, speech[half:])
        await second.send_json_to({"type": "stop"})
        second_events = await receive_until(second, "closed")
        return readies, first_events, first_close, decoded_before, second_events

    with mock.patch.object(
        FileSystemStorage, "save", autospec=True, side_effect=save_or_fail
    ) as saved:
        readies, first_events, first_close, decoded_before, second_events = asyncio.run(scenario())

    assert [call.args[1] for call in saved.call_args_list].count(*unwritable) == 1
    errors = [e for e in first_events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["storage_failed"]
    assert "No space left on device" in errors[0]["message"]
    assert first_events[-1] == {"type": "closed", "job_id": readies[0]["job_id"]}
    assert first_close == {"type": "websocket.close", "code": 1000}

    kinds = [e["type"] for e in second_events]
    assert "error" not in kinds and ("partial" in kinds or "final" in kinds)
    assert second_events[-1] == {"type": "closed", "job_id": readies[1]["job_id"]}
    job = Job.objects.get(pk=readies[1]["job_id"])
    assert (job.status, job.error_code) == ("completed", "")
    assert job.metrics["audio_duration_s"] == pytest.approx(speech.shape[0] / 16000, abs=0.01)
    assert job.metrics["windows"] > decoded_before, "decoded after the first session failed"
    finals = {e["segment"]["id"] for e in second_events if e["type"] == "final"}
    assert finals <= set(StreamSegment.objects.filter(job=job).values_list("index", flat=True))
    assert (stream_settings.MEDIA_ROOT / job.result_path).is_file()
