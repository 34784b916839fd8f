"""The official openai SDK against a live scribe: daphne + qcluster on PostgreSQL.

Every response format, word and segment granularities, streaming (deltas before the job
ends, on a file longer than one 30 s window), and the SDK's own exception types for 401,
400, 413 and 429.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import openai
import pytest

from tests.conftest import require_service, shared_clip
from tests.e2e.stack import Stack
from tests.media import write_tone_wav, write_wav
from transcription.engine.testmodel import build_test_model

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The random-weight model at tiny.en's size: unlike the micro one it cuts a minute of
    speech into several segments, so a stream has several deltas."""
    return build_test_model(tmp_path_factory.mktemp("models") / "tiny", size="tiny")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_dir, tiny_model):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("openai_stack")
    # The batch lane on the micro model (fast), the realtime lane's name on the tiny one.
    with Stack(
        tmp, model_dir, SCRIBE_WORKERS="1", SCRIBE_REALTIME_MODEL=str(tiny_model)
    ) as running:
        yield running


def sdk(stack: Stack, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{stack.base_url}/v1", api_key=key or stack.key, max_retries=0, timeout=300
    )


def test_the_sdk_transcribes_in_every_response_format(stack):
    jfk = shared_clip("jfk.flac")
    client = sdk(stack)

    def create(**kwargs):
        with jfk.open("rb") as audio:
            return client.audio.transcriptions.create(file=audio, model="whisper-1", **kwargs)

    plain = create()
    assert plain.text and plain.usage.type == "duration" and plain.usage.seconds == 11
    assert create(response_format="text").strip()
    assert create(response_format="srt").startswith("1\n00:00:")
    assert create(response_format="vtt").startswith("WEBVTT")

    verbose = create(response_format="verbose_json", language="en")
    assert verbose.language == "en" and verbose.duration == pytest.approx(11.0, abs=0.01)
    assert verbose.segments and verbose.words is None
    assert all(s.tokens and s.end >= s.start for s in verbose.segments)
    assert verbose.text.strip() == " ".join(s.text.strip() for s in verbose.segments)

    words = create(response_format="verbose_json", timestamp_granularities=["word"])
    assert words.words and words.segments is None
    assert all(0.0 <= w.start <= w.end <= 11.01 and w.word for w in words.words)

    both = create(
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        extra_body={"hotwords": ["Kennedy", "Berlin"]},  # scribe's extras ride along
    )
    assert both.words and both.segments
    [(options,)] = stack.sql(
        "SELECT options FROM transcription_job ORDER BY created_at DESC LIMIT 1"
    )
    assert options["hotwords"] == ["Kennedy", "Berlin"] and options["word_timestamps"] is True
    assert [m.id for m in client.models.list()][0] == "whisper-1"


def test_the_sdk_streams_deltas_before_the_job_ends(stack, tmp_path):
    clip = shared_clip("multilingual.mp3")  # 60 s: two of Whisper's 30 s windows
    client = sdk(stack)
    arrivals: list[tuple[dt.datetime, object]] = []
    with clip.open("rb") as audio:
        stream = client.audio.transcriptions.create(file=audio, model="realtime", stream=True)
        job_id = stream.response.headers["x-scribe-job-id"]
        for event in stream:
            arrivals.append((dt.datetime.now(dt.UTC), event))

    deltas = [e for _, e in arrivals if e.type == "transcript.text.delta"]
    done = arrivals[-1][1]
    assert done.type == "transcript.text.done" and len(deltas) >= 2
    assert "".join(d.delta for d in deltas) == done.text
    assert done.usage.seconds == 60
    [(finished_at, status)] = stack.sql(
        "SELECT finished_at, status FROM transcription_job WHERE id = %s", job_id
    )
    assert status == "completed"
    assert arrivals[0][0] < finished_at  # the first words came while the job still ran


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory, model_dir):
    """No workers; 1 MB uploads; three requests a minute per key."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("openai_strict")
    with Stack(
        tmp,
        model_dir,
        batch_workers=False,
        SCRIBE_MAX_UPLOAD_MB="1",
        SCRIBE_RATE_LIMIT="3/minute",
    ) as running:
        yield running


def test_errors_surface_as_the_sdks_exception_types(strict_stack, tmp_path):
    small = write_tone_wav(tmp_path / "small.wav", seconds=2)
    client = sdk(strict_stack)

    with pytest.raises(openai.AuthenticationError) as denied:
        sdk(strict_stack, key="sk-not-a-scribe-key").models.list()
    assert denied.value.status_code == 401

    with pytest.raises(openai.BadRequestError) as bad, small.open("rb") as audio:
        client.audio.transcriptions.create(file=audio, model="gpt-4o-transcribe")
    assert bad.value.body["param"] == "model" and "whisper-1" in bad.value.message

    big = write_wav(tmp_path / "big.wav", np.zeros(16000 * 40))  # 1.3 MB
    with pytest.raises(openai.APIStatusError) as too_large, big.open("rb") as audio:
        client.audio.transcriptions.create(file=audio, model="whisper-1")
    assert too_large.value.status_code == 413
    assert too_large.value.body["code"] == "upload_too_large"

    with pytest.raises(openai.RateLimitError) as limited:  # the 400 counted; 413 did not
        for _ in range(3):
            client.models.list()
    assert limited.value.status_code == 429 and limited.value.body["type"] == "rate_limit_error"
