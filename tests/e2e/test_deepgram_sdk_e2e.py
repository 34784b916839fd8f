"""The official Deepgram SDK (deepgram-sdk 7.x) against a live scribe: daphne + qcluster on
PostgreSQL, ``POST /v1/listen`` (Deepgram's pre-recorded API).

``transcribe_file`` answered with the transcript and its words, utterances and paragraphs
when asked, unknown and unimplemented parameters ignored, ``language=en-US``; a callback
answered ``{"request_id"}`` at once and POSTed, signed, in Deepgram's shape to a loopback
receiver; a callback host off the allowlist and a bad key as the SDK's errors. The SDK
reaches only the loopback server.
"""

from __future__ import annotations

import ipaddress
import json
import socket

import numpy as np
import pytest
from deepgram import DeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.errors import BadRequestError
from deepgram.types import ListenV1AcceptedResponse, ListenV1Response

from tests.conftest import require_service, shared_clip
from tests.e2e.stack import Stack
from tests.e2e.test_jobs_e2e import wait_for
from tests.media import write_wav
from tests.webhooks.test_deliveries import Receiver, verify

pytestmark = [pytest.mark.e2e, pytest.mark.shared_audio]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_dir):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("deepgram_stack")
    with Stack(tmp, model_dir, SCRIBE_WORKERS="1", SCRIBE_WEBHOOK_ALLOWED_HOSTS="127.0.0.1") as s:
        s.secret = s.manage(
            "shell",
            "-c",
            "from accounts.models import Owner; from webhooks.services import "
            "webhook_secret_rotate as r; print(r(owner=Owner.objects.get(name='e2e')))",
        ).split()[-1]  # after the shell's banner
        yield s


@pytest.fixture
def loopback_only(monkeypatch):
    """Every connection this process opens is recorded; one off loopback is refused."""
    dialled: list[str] = []
    connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        dialled.append(host)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert ipaddress.ip_address(host).is_loopback, f"the SDK dialled {host}"
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return dialled


def sdk(stack: Stack, key: str | None = None) -> DeepgramClient:
    environment = DeepgramClientEnvironment(
        base=stack.base_url,
        production=stack.base_url.replace("http", "ws"),
        agent=stack.base_url.replace("http", "ws"),
        agent_rest=stack.base_url,
    )
    return DeepgramClient(api_key=key or stack.key, environment=environment, timeout=300)


def transcribe(client: DeepgramClient, **options):
    audio = shared_clip("jfk.flac").read_bytes()
    return client.listen.v1.media.transcribe_file(
        request=audio, request_options={"max_retries": 0}, **options
    )


def test_transcribe_file_answers_the_transcript_with_words(stack, loopback_only):
    result = transcribe(
        sdk(stack),
        model="nova-3",
        language="en-US",
        smart_format=True,
        utterances=True,
        paragraphs=True,
        filler_words=True,  # not implemented: accepted and ignored
        mip_opt_out=True,
        summarize="v2",
    )

    assert isinstance(result, ListenV1Response)
    assert result.metadata.duration == pytest.approx(11.0, abs=0.01)
    assert result.metadata.channels == 1 and len(result.metadata.models) == 1
    [alternative] = result.results.channels[0].alternatives
    assert alternative.transcript and alternative.words
    assert 0.0 <= alternative.confidence <= 1.0
    assert all(0.0 <= w.start <= w.end <= 11.01 and w.word for w in alternative.words)
    assert alternative.paragraphs.paragraphs[0].sentences
    assert result.results.utterances and result.results.utterances[0].transcript
    [(options,)] = stack.sql(
        "SELECT options FROM transcription_job WHERE id = %s", result.metadata.request_id
    )
    assert options["language"] == "en" and options["model"] == "batch"
    ignored = {w["parameter"] for w in result.metadata.warnings}
    assert ignored == {"filler_words", "mip_opt_out", "summarize"}
    assert set(loopback_only) == {"127.0.0.1"}

    plain = transcribe(sdk(stack))
    assert plain.results.utterances is None
    assert plain.results.channels[0].alternatives[0].paragraphs is None

    # The SDK's models, validated strictly (the SDK itself constructs them unchecked).
    with stack.client() as client:
        raw = client.post(
            "/v1/listen?utterances=true&smart_format=true&diarize=false",
            content=shared_clip("jfk.flac").read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
    ListenV1Response.model_validate(raw.json())


def test_a_callback_is_answered_at_once_and_posted_signed_in_deepgrams_shape(stack, loopback_only):
    with Receiver() as receiver:
        accepted = transcribe(sdk(stack), callback=receiver.url, utterances=True)
        assert isinstance(accepted, ListenV1AcceptedResponse), accepted
        wait_for(lambda: receiver.requests, 120, "the callback")

    [request] = receiver.requests
    assert verify(stack.secret, request["body"], request["headers"]["Scribe-Signature"])
    body = json.loads(request["body"])
    parsed = ListenV1Response.model_validate(body)  # strictly, not as the SDK constructs
    assert parsed.metadata.request_id == accepted.request_id
    assert parsed.results.channels[0].alternatives[0].words
    assert parsed.results.utterances
    assert set(loopback_only) == {"127.0.0.1"}


def test_errors_surface_as_the_sdks_exceptions(stack, loopback_only):
    with pytest.raises(BadRequestError) as refused:
        transcribe(sdk(stack), callback="http://127.0.0.2:9/hook")
    assert "SCRIBE_WEBHOOK_ALLOWED_HOSTS" in refused.value.body["err_msg"]

    with pytest.raises(ApiError) as denied:
        transcribe(sdk(stack, key="sk_nope.nope"))
    assert denied.value.status_code == 401
    assert set(denied.value.body) == {"err_code", "err_msg", "request_id"}


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory, model_dir):
    """No workers; 1 MB uploads; three requests a minute per key."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("deepgram_strict")
    with Stack(
        tmp, model_dir, batch_workers=False, SCRIBE_MAX_UPLOAD_MB="1", SCRIBE_RATE_LIMIT="3/minute"
    ) as running:
        yield running


def test_limits_are_the_sdks_api_errors_in_deepgrams_shape(strict_stack, tmp_path, loopback_only):
    client = sdk(strict_stack)
    big = write_wav(tmp_path / "big.wav", np.zeros(16000 * 40)).read_bytes()  # 1.3 MB
    with pytest.raises(ApiError) as too_large:
        client.listen.v1.media.transcribe_file(request=big, request_options={"max_retries": 0})
    assert too_large.value.status_code == 413
    assert too_large.value.body["err_code"] == "upload_too_large"

    def not_audio() -> ApiError:
        with pytest.raises(ApiError) as refused:
            client.listen.v1.media.transcribe_file(
                request=b"not audio", request_options={"max_retries": 0}
            )
        return refused.value

    # Three a minute: the 413 did not count against the key, the 415s do.
    assert [not_audio().status_code for _ in range(3)] == [415, 415, 415]
    limited = not_audio()
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert set(limited.body) == {"err_code", "err_msg", "request_id"}
