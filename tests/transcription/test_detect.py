"""POST /v1/detect: speech presence by the VAD alone, as a file or as raw PCM."""

from __future__ import annotations

import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from accounts.services import api_key_create
from tests.conftest import shared_clip
from tests.e2e.stack import api_key, sqlite_daphne
from tests.media import speech_like, write_mp4, write_tone_wav, write_wav
from transcription.engine.audio import decode_all

pytestmark = pytest.mark.django_db

SR = 16000


def post_file(api, path: Path, **extra):
    with path.open("rb") as handle:
        return api.post("/v1/detect", {"file": handle}, format="multipart", **extra)


def post_pcm(api, samples: np.ndarray, query: str = "?encoding=pcm_s16le&sample_rate=16000"):
    return api.generic(
        "POST",
        f"/v1/detect{query}",
        pcm_s16le(samples),
        content_type="application/octet-stream",
    )


def pcm_s16le(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def padded_speech(seconds: float = 2.0) -> np.ndarray:
    """One second of silence, ``seconds`` of speech-like sound, one of silence."""
    silence = np.zeros(SR, dtype=np.float32)
    return np.concatenate([silence, speech_like(seconds), silence])


def assert_regions_inside(body: dict) -> None:
    for region in body["regions"]:
        assert 0 <= region["start"] < region["end"] <= body["duration_sec"]
    assert body["speech_sec"] == pytest.approx(
        sum(r["end"] - r["start"] for r in body["regions"]), abs=0.002
    )


def test_silence_is_no_speech_and_has_no_regions(api, tmp_path):
    response = post_file(api, write_wav(tmp_path / "quiet.wav", np.zeros(3 * SR)))

    assert response.status_code == 200
    assert response.json() == {
        "speech": False,
        "speech_sec": 0.0,
        "duration_sec": 3.0,
        "regions": [],
    }


def test_a_wav_of_no_samples_is_refused_as_no_audio(api, tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as empty:  # a header, no frames
        empty.setnchannels(1)
        empty.setsampwidth(2)
        empty.setframerate(SR)

    response = post_file(api, path)

    assert response.status_code == 415, response.json()
    assert "no audio could be decoded" in response.json()["error"]["message"]


def test_a_tone_is_not_speech(api, tone_wav):
    body = post_file(api, tone_wav).json()

    assert body["speech"] is False and body["duration_sec"] == 3.0


def test_speech_like_sound_is_speech_where_it_sounds(api, tmp_path):
    response = post_file(api, write_wav(tmp_path / "vowels.wav", padded_speech(2.0)))

    body = response.json()
    assert response.status_code == 200
    assert body["speech"] is True and body["duration_sec"] == 4.0
    assert_regions_inside(body)
    # Heard within the voiced part (1 s to 3 s), give or take the VAD's padding.
    assert body["regions"][0]["start"] >= 0.8 and body["regions"][-1]["end"] <= 3.3
    assert body["speech_sec"] > 1.0


def test_a_real_speech_clip_is_speech_with_regions_inside_it(api, jfk):
    body = post_file(api, jfk).json()

    assert body["speech"] is True
    assert body["duration_sec"] == pytest.approx(11.0, abs=0.1)
    assert_regions_inside(body)
    assert len(body["regions"]) >= 2, "jfk.flac pauses between phrases"
    assert 5.0 < body["speech_sec"] < body["duration_sec"]


def test_a_compressed_clip_is_decoded_as_jobs_decode_it(api):
    body = post_file(api, shared_clip("hotwords.mp3")).json()

    assert body["speech"] is True
    assert_regions_inside(body)


def test_a_video_with_a_sound_track_is_heard(api, tmp_path):
    body = post_file(api, write_mp4(tmp_path / "clip.mp4", audio=padded_speech(2.0))).json()

    assert body["speech"] is True and body["duration_sec"] == pytest.approx(4.0, abs=0.1)
    assert_regions_inside(body)


def test_raw_pcm_gives_the_same_answer_as_the_file(api, tmp_path):
    audio = padded_speech(2.0)
    as_file = post_file(api, write_wav(tmp_path / "vowels.wav", audio)).json()

    response = post_pcm(api, audio)

    assert response.status_code == 200
    assert response.json() == as_file


def test_raw_pcm_sent_as_curl_sends_it_by_default_is_taken_too(api):
    """``curl --data-binary`` says application/x-www-form-urlencoded unless told otherwise."""
    response = api.generic(
        "POST",
        "/v1/detect?encoding=pcm_s16le&sample_rate=16000",
        pcm_s16le(padded_speech(2.0)),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200 and response.json()["speech"] is True


def test_raw_pcm_at_another_rate_is_resampled(api):
    audio_16k = padded_speech(2.0)
    audio_48k = np.interp(
        np.arange(audio_16k.size * 3) / 3, np.arange(audio_16k.size), audio_16k
    ).astype(np.float32)

    response = post_pcm(api, audio_48k, "?encoding=pcm_s16le&sample_rate=48000")

    body = response.json()
    assert response.status_code == 200
    assert body["speech"] is True and body["duration_sec"] == pytest.approx(4.0, abs=0.01)
    assert_regions_inside(body)


def test_raw_float_pcm_is_taken_as_the_live_stream_takes_it(api):
    audio = padded_speech(2.0)
    response = api.generic(
        "POST",
        "/v1/detect?encoding=f32le&sample_rate=16000",
        audio.astype("<f4").tobytes(),
        content_type="application/octet-stream",
    )

    assert response.status_code == 200 and response.json()["speech"] is True


def test_a_raw_body_without_its_format_names_the_missing_parameters(api):
    response = post_pcm(api, padded_speech(), query="")

    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"encoding", "sample_rate"}
    assert "?encoding=" in fields["encoding"][0]


def test_a_raw_body_with_half_its_format_names_the_other_parameter(api):
    response = post_pcm(api, padded_speech(), query="?encoding=pcm_s16le")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"sample_rate"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?encoding=mp3&sample_rate=16000", "encoding"),
        ("?encoding=pcm_s16le&sample_rate=12345", "sample_rate"),
        ("?encoding=pcm_s16le&sample_rate=fast", "sample_rate"),
        ("?encoding=&sample_rate=16000", "encoding"),
    ],
)
def test_an_unsupported_format_is_refused_naming_the_parameter(api, query, field):
    response = post_pcm(api, padded_speech(), query=query)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_an_odd_byte_count_is_not_pcm(api):
    response = api.generic(
        "POST",
        "/v1/detect?encoding=pcm_s16le&sample_rate=16000",
        b"\x00\x01\x02",
        content_type="application/octet-stream",
    )

    assert response.status_code == 400
    assert "3 bytes" in response.json()["error"]["fields"]["body"][0]


def test_an_empty_raw_body_is_refused(api):
    response = api.generic(
        "POST", "/v1/detect?encoding=pcm_s16le&sample_rate=16000", b"", content_type=""
    )

    assert response.status_code == 400
    assert "body" in response.json()["error"]["fields"]


def test_a_file_with_an_empty_or_unknown_format_parameter_is_refused(api, tone_wav):
    with tone_wav.open("rb") as handle:
        response = api.post(
            "/v1/detect?encoding=&sample_rate=16000", {"file": handle}, format="multipart"
        )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["encoding"]


def test_a_multipart_body_without_a_file_names_the_field(api):
    response = api.post("/v1/detect", {"other": "x"}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]


def test_a_file_that_is_not_audio_is_refused_with_415_as_jobs_are(api, tmp_path):
    notes = tmp_path / "notes.mp3"
    notes.write_text("meeting notes, not audio")

    response = post_file(api, notes)

    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_media"
    assert error["message"].startswith("Cannot read notes.mp3:"), "not the temporary file"


def test_a_file_over_the_limit_is_refused_with_413_saying_the_limit(api, settings, tmp_path):
    settings.SCRIBE_DETECT_MAX_S = 2
    response = post_file(api, write_wav(tmp_path / "long.wav", np.zeros(3 * SR)))

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "clip_too_long"
    assert "2 seconds" in error["message"] and "SCRIBE_DETECT_MAX_S" in error["message"]
    assert post_file(api, write_wav(tmp_path / "ok.wav", np.zeros(2 * SR))).status_code == 200


def test_raw_pcm_over_the_limit_is_refused_with_413(api, settings):
    settings.SCRIBE_DETECT_MAX_S = 2

    over = post_pcm(api, np.zeros(2 * 48000 + 1), "?encoding=pcm_s16le&sample_rate=48000")
    at_limit = post_pcm(api, np.zeros(2 * 48000), "?encoding=pcm_s16le&sample_rate=48000")

    assert over.status_code == 413 and over.json()["error"]["code"] == "clip_too_long"
    assert at_limit.status_code == 200 and at_limit.json()["duration_sec"] == 2.0


def test_a_key_without_the_transcribe_scope_gets_403(tmp_path):
    from rest_framework.test import APIClient

    _, secret = api_key_create(owner_name="glossary-editor", scopes=["glossary"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = post_file(client, write_wav(tmp_path / "quiet.wav", np.zeros(SR)))

    assert response.status_code == 403
    assert "'transcribe'" in response.json()["error"]["message"]


def test_without_a_key_it_is_401(client, tmp_path):
    with write_wav(tmp_path / "quiet.wav", np.zeros(SR)).open("rb") as handle:
        response = client.post("/v1/detect", {"file": handle})

    assert response.status_code == 401


def test_detect_has_its_own_rate_limit_apart_from_the_keys(api, settings):
    settings.SCRIBE_RATE_LIMIT = "3/minute"
    settings.SCRIBE_DETECT_RATE_LIMIT = "5/minute"
    quiet = np.zeros(SR // 2)

    detects = [post_pcm(api, quiet).status_code for _ in range(6)]
    listing = api.get("/v1/jobs")

    assert detects == [200] * 5 + [429]
    assert listing.status_code == 200, "detect calls did not use up the key's other calls"
    for _ in range(3):
        api.get("/v1/jobs")
    assert api.get("/v1/jobs").status_code == 429
    settings.SCRIBE_DETECT_RATE_LIMIT = "6/minute"
    assert post_pcm(api, quiet).status_code == 200, "nor jobs calls detect's"


def test_the_schema_documents_detect(api):
    from rest_framework.test import APIClient

    schema = APIClient().get("/v1/schema", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/v1/detect"]["post"]

    assert operation["operationId"] == "v1_detect_create"
    assert set(operation["requestBody"]["content"]) == {
        "multipart/form-data",
        "application/octet-stream",
    }
    assert {"200", "400", "403", "413", "415", "429"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"encoding", "sample_rate"}


@pytest.mark.e2e
def test_daphne_answers_detect_over_a_socket_with_keep_alive(tmp_path, model_dir):
    speech = pcm_s16le(padded_speech(2.0))
    # A model for the live lane that daphne runs too, so that its start logs no error.
    served = sqlite_daphne(
        tmp_path,
        SCRIBE_BATCH_MODEL=str(model_dir),
        SCRIBE_REALTIME_MODEL=str(model_dir),
        SCRIBE_OFFLINE="true",
    )
    with served as (port, environ):
        headers = {"Authorization": f"Bearer {api_key(environ, 'transcribe')}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            raw = http.post(
                "/v1/detect",
                params={"encoding": "pcm_s16le", "sample_rate": 16000},
                content=speech,
                headers={"Content-Type": "application/octet-stream"},
            )
            wav = write_wav(tmp_path / "vowels.wav", padded_speech(2.0))
            as_file = http.post("/v1/detect", files={"file": ("vowels.wav", wav.read_bytes())})
            silent = http.post(
                "/v1/detect",
                files={
                    "file": ("t.wav", write_tone_wav(tmp_path / "t.wav", seconds=1).read_bytes())
                },
            )
            not_audio = http.post("/v1/detect", files={"file": ("x.mp3", b"not audio at all")})
        log = (tmp_path / "daphne.log").read_text()

    assert raw.status_code == 200 and raw.json()["speech"] is True
    assert as_file.json() == raw.json()
    assert silent.json()["speech"] is False
    assert not_audio.status_code == 415 and not_audio.json()["error"]["code"] == "unsupported_media"
    assert "Traceback" not in log


def test_the_answer_follows_the_clip_not_the_first_call(api, jfk):
    """The VAD model is shared by the process; its state is not carried between clips."""
    speech = decode_all(jfk)[: 3 * SR]
    first = post_pcm(api, speech).json()
    post_pcm(api, np.zeros(3 * SR))

    assert post_pcm(api, speech).json() == first
