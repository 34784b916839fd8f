"""Speakers through the jobs API: channels as speakers, refusals at submission, the
pyannote path's errors, and the device plan's room for the diarization model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import result_json, shared_clip
from tests.media import write_tone_wav
from transcription import runner
from transcription.engine import GpuInfo, HardwareProfile, speech_regions
from transcription.engine.diarization import (
    ESTIMATED_FOOTPRINT_MB,
    DiarizationUnavailableError,
    _checkpoint,
    _footprint_key,
)
from transcription.engine.registry import record_measured_footprint
from transcription.lanes import device_lanes_build
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def pyannote_imports() -> bool:
    try:
        return importlib.util.find_spec("pyannote.audio") is not None and bool(
            __import__("pyannote.audio")
        )
    except (ImportError, OSError):  # OSError: a torchaudio built for another torch
        return False


def upload(api, path: Path, options: dict):
    with path.open("rb") as handle:
        return api.post(
            "/v1/jobs", {"file": handle, "options": json.dumps(options)}, format="multipart"
        )


def run_job(api, path: Path, options: dict) -> dict:
    created = upload(api, path, options)
    assert created.status_code == 202, created.json()
    runner.job_process(job_id=created.json()["job_id"])
    return api.get(f"/v1/jobs/{created.json()['job_id']}").json()


def channel_speech(path: Path, channel: int) -> list[tuple[float, float]]:
    """Where one channel has speech, by Silero VAD over that channel alone (decoded here
    with PyAV, independently of the engine's channel reader)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.sample_rate == 16000, "VAD needs 16 kHz"
        assert stream.codec_context.format.name == "s16", "packed 16-bit PCM expected"
        channels = stream.codec_context.channels
        packed = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    samples = packed.reshape(-1, channels)[:, channel].astype(np.float32) / 32768.0
    return speech_regions(samples)


def inside(start: float, end: float, regions: list[tuple[float, float]]) -> float:
    """Share of [start, end] inside ``regions``."""
    shared = sum(max(0.0, min(end, b) - max(start, a)) for a, b in regions)
    return shared / max(end - start, 1e-6)


@pytest.mark.real_model
@pytest.mark.shared_audio
def test_channels_yield_two_speakers_where_each_channel_has_speech(
    api, job_settings, real_model_dir
):
    job_settings.SCRIBE_BATCH_MODEL = str(real_model_dir)
    stereo = shared_clip("stereo_diarization.wav")

    done = run_job(api, stereo, {"language": "en", "diarize": "channels"})

    assert done["status"] == "completed", done
    result = result_json(api.get(f"/v1/jobs/{done['job_id']}/result?format=json"))
    assert result["speakers"] == ["CHANNEL_0", "CHANNEL_1"]
    assert result["run"]["decoding"]["diarize"] == "channels"
    by_speaker: dict[str, list[dict]] = {}
    for segment in result["segments"]:
        by_speaker.setdefault(segment["speaker"], []).append(segment)
    assert set(by_speaker) == {"CHANNEL_0", "CHANNEL_1"}
    for channel in (0, 1):
        speech = channel_speech(stereo, channel)
        other = channel_speech(stereo, 1 - channel)
        for segment in by_speaker[f"CHANNEL_{channel}"]:
            assert inside(segment["start"], segment["end"], speech) >= 0.9, (channel, segment)
        # The speaker's time is its own channel's: it covers most of that channel's speech.
        said = [(s["start"], s["end"]) for s in by_speaker[f"CHANNEL_{channel}"]]
        covered = sum(inside(a, b, said) * (b - a) for a, b in speech)
        assert covered >= 0.7 * sum(b - a for a, b in speech), channel
        assert speech != other
    # Channel 1 stops talking well before channel 0: its speaker must, too.
    assert max(s["end"] for s in by_speaker["CHANNEL_1"]) < max(
        s["end"] for s in by_speaker["CHANNEL_0"]
    )
    vtt = api.get(f"/v1/jobs/{done['job_id']}/result?format=vtt").content.decode()
    assert "<v CHANNEL_0>" in vtt and "<v CHANNEL_1>" in vtt


def test_channels_on_a_mono_file_are_refused_at_submission(api, job_settings, tmp_path):
    mono = write_tone_wav(tmp_path / "mono.wav", seconds=2.0, channels=1)

    refused = upload(api, mono, {"diarize": "channels"})

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "not_multichannel"
    assert "1 channel" in error["message"] and '"diarize": true' in error["message"]
    assert Job.objects.count() == 0


def test_diarize_true_is_refused_where_the_deployment_has_it_disabled(api, job_settings):
    job_settings.SCRIBE_DIARIZATION = False

    refused = upload(api, Path(__file__), {"diarize": True})

    assert refused.status_code == 400
    assert "disabled on this server" in refused.json()["error"]["fields"]["options"]["diarize"][0]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"diarize": "maybe"}, "diarize"),
        ({"diarize": False, "min_speakers": 2}, "min_speakers"),
        ({"diarize": "channels", "max_speakers": 2}, "max_speakers"),
        ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "max_speakers"),
        ({"diarize": True, "max_speakers": 0}, "max_speakers"),
    ],
)
def test_bad_speaker_options_are_field_errors(api, job_settings, options, field):
    job_settings.SCRIBE_DIARIZATION = True

    refused = upload(api, Path(__file__), options)

    assert refused.status_code == 400
    assert field in refused.json()["error"]["fields"]["options"]


@pytest.mark.shared_audio
@pytest.mark.skipif(pyannote_imports(), reason="pyannote.audio imports here")
def test_without_pyannote_a_diarization_job_fails_saying_what_to_install(api, job_settings):
    job_settings.SCRIBE_DIARIZATION = True  # the web process thinks the workers have it

    done = run_job(api, shared_clip("jfk.flac"), {"diarize": True, "max_speakers": 2})

    assert done["status"] == "failed"
    assert done["error"]["code"] == "diarization_unavailable"
    assert "pip install -e '.[diarize]'" in done["error"]["message"]
    assert done["attempts"] == 1  # permanent: not retried
    assert Job.objects.get().source_path == ""  # the audio is gone


@pytest.mark.shared_audio
@pytest.mark.skipif(not pyannote_imports(), reason="pyannote.audio does not import here")
@pytest.mark.parametrize("where", ["hub", "local"])
def test_without_weights_a_diarization_job_fails_saying_how_to_provide_them(
    api, job_settings, tmp_path, where
):
    job_settings.SCRIBE_DIARIZATION = True
    job_settings.SCRIBE_OFFLINE = True
    if where == "hub":
        job_settings.SCRIBE_DIARIZATION_MODEL = "pyannote/speaker-diarization-community-1"
        expected = "are not available: this server is offline"
    else:  # a directory without a usable pipeline in it
        (tmp_path / "pipeline").mkdir()
        job_settings.SCRIBE_DIARIZATION_MODEL = str(tmp_path / "pipeline")
        expected = "SCRIBE_DIARIZATION_MODEL=DIR"

    done = run_job(api, shared_clip("jfk.flac"), {"diarize": True})

    assert done["status"] == "failed"
    assert done["error"]["code"] == "diarization_unavailable"
    assert expected in done["error"]["message"]


def gpu_profile(free_mb: int) -> HardwareProfile:
    return HardwareProfile(
        cpu_cores=8,
        ram_total_mb=64_000,
        ram_available_mb=60_000,
        cpu_compute_types=("int8", "float32"),
        gpus=(
            GpuInfo(0, "Tesla T4", (7, 5), 15_360, free_mb, ("float16", "int8_float16", "int8")),
        ),
    )


def test_the_device_plan_makes_room_for_the_diarization_model_where_workers_load_it(
    job_settings, tmp_path
):
    job_settings.SCRIBE_LANES = ["batch"]
    job_settings.SCRIBE_DEVICE = "auto"
    job_settings.SCRIBE_BATCH_MODEL = "large-v3"
    job_settings.SCRIBE_DIARIZATION_MODEL = "pyannote/speaker-diarization-community-1"
    profile = gpu_profile(free_mb=15_000)

    job_settings.SCRIBE_DIARIZATION = False
    without = device_lanes_build(profile=profile).batch.primary
    job_settings.SCRIBE_DIARIZATION = True
    estimated = device_lanes_build(profile=profile).batch.primary
    record_measured_footprint(
        job_settings.SCRIBE_MODELS_DIR,
        _footprint_key("pyannote/speaker-diarization-community-1", "cuda"),
        700.0,
    )
    measured = device_lanes_build(profile=profile).batch.primary

    assert without.device == estimated.device == "cuda"
    assert estimated.footprint_mb == pytest.approx(
        without.footprint_mb + ESTIMATED_FOOTPRINT_MB["cuda"]
    )
    assert measured.footprint_mb == pytest.approx(without.footprint_mb + 700.0)


def test_offline_a_hub_pipeline_not_in_the_cache_is_a_clear_error(tmp_path):
    with pytest.raises(DiarizationUnavailableError) as raised:
        _checkpoint(
            "pyannote/speaker-diarization-community-1",
            cache_dir=tmp_path / "pyannote",
            offline=True,
            token=None,
        )

    message = raised.value.message
    assert "this server is offline" in message and str(tmp_path / "pyannote") in message
    assert "SCRIBE_DIARIZATION_MODEL=DIR" in message
    assert raised.value.permanent


def test_offline_a_cached_hub_pipeline_loads_from_its_snapshot(tmp_path):
    """The hub cache's own layout (models--org--name/refs, snapshots), as a download leaves it."""
    repo = tmp_path / "pyannote" / "models--pyannote--speaker-diarization-community-1"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.yaml").write_text("pipeline: {}\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)

    found = _checkpoint(
        "pyannote/speaker-diarization-community-1",
        cache_dir=tmp_path / "pyannote",
        offline=True,
        token=None,
    )

    assert Path(found) == snapshot


def test_a_local_pipeline_path_is_used_as_given_or_refused_when_missing(tmp_path):
    assert _checkpoint(str(tmp_path), cache_dir=tmp_path, offline=True, token=None) == str(tmp_path)
    with pytest.raises(DiarizationUnavailableError, match="does not exist"):
        _checkpoint(str(tmp_path / "nowhere"), cache_dir=tmp_path, offline=False, token=None)
