"""A CUDA out-of-memory raised while decoding steps the model down and the job completes.

There is no GPU here, so the GPU is staged at its edges only: CTranslate2 says it sees one
CUDA device, a stand-in ``nvidia-smi`` on PATH prints a recorded T4, and faster-whisper's
``WhisperModel`` asked for ``cuda`` is the real random-weight model on the CPU whose
CTranslate2 model raises CTranslate2's own CUDA OOM from ``generate`` the first N times.
Everything between (the device plan, the manager, the pipeline, the job service) is ours
and runs for real.
"""

from __future__ import annotations

import os
import stat
from unittest import mock

import ctranslate2  # noqa: TID251 - the edge this test stages a GPU at
import faster_whisper  # noqa: TID251 - the edge this test stages a GPU at
import pytest

from tests.conftest import result_json
from tests.media import write_tone_wav
from tests.transcription.test_jobs_api import upload
from transcription import runner
from transcription.engine import EngineError, TranscribeOptions, model_manager, transcribe
from transcription.models import Job

CUDA_OOM = "CUDA failed with error out of memory"
T4_SMI_ROW = "0, Tesla T4, 7.5, 15360, 14930"
TURING_TYPES = {"float32", "float16", "int8", "int8_float16", "int8_float32"}
RealWhisperModel = faster_whisper.WhisperModel
real_supported_types = ctranslate2.get_supported_compute_types


class StagedCudaWhisper:
    """CTranslate2's Whisper model as a CUDA device would hold it: what it reports is the
    CUDA placement asked for; ``generate`` runs out of memory while ``ooms`` remain."""

    def __init__(self, real, compute_type: str, ooms: list[int]) -> None:
        self._real, self._compute_type, self._ooms = real, compute_type, ooms

    device = "cuda"

    @property
    def compute_type(self) -> str:
        return self._compute_type

    def generate(self, *args, **kwargs):
        if self._ooms[0] > 0:
            self._ooms[0] -= 1
            raise RuntimeError(CUDA_OOM)
        return self._real.generate(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture
def staged_t4(tmp_path, monkeypatch):
    """One T4 at the process and library edges; returns the list holding the OOM count."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{T4_SMI_ROW}'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # A worker plans its device once per process; this "process" has just gained a T4.
    monkeypatch.setattr(runner, "_plans", {})
    ooms = [0]
    loads: list[tuple[str, str]] = []

    def whisper_model(path, *, device, compute_type, **kwargs):
        loads.append((device, compute_type))
        if device != "cuda":
            return RealWhisperModel(path, device=device, compute_type=compute_type, **kwargs)
        kwargs.pop("device_index", None)
        real = RealWhisperModel(path, device="cpu", compute_type="int8", **kwargs)
        real.model = StagedCudaWhisper(real.model, compute_type, ooms)
        return real

    def supported_types(device, device_index=0):
        return TURING_TYPES if device == "cuda" else real_supported_types(device)

    with (
        mock.patch("transcription.engine.manager.WhisperModel", side_effect=whisper_model),
        mock.patch.object(ctranslate2, "get_cuda_device_count", return_value=1),
        mock.patch.object(ctranslate2, "get_supported_compute_types", side_effect=supported_types),
    ):
        model_manager.clear()
        yield ooms, loads
    model_manager.clear()


def cuda_model(model_dir, tmp_path, compute_type="float16"):
    return model_manager.get(
        str(model_dir),
        models_dir=tmp_path / "models",
        offline=True,
        device="cuda",
        device_index=0,
        compute_type=compute_type,
    )


def test_one_decode_oom_steps_down_in_precision_on_the_same_gpu(staged_t4, model_dir, tmp_path):
    ooms, loads = staged_t4
    ooms[0] = 1
    audio = write_tone_wav(tmp_path / "tone.wav", seconds=5)

    transcript = transcribe(audio, cuda_model(model_dir, tmp_path), TranscribeOptions(vad=False))

    run = transcript.run
    assert (run.device, run.compute_type_requested, run.compute_type) == (
        "cuda",
        "float16",
        "int8_float16",
    )
    assert run.fallbacks == (
        "window 1: out of memory on cuda:0 with float16; retried on cuda:0 with int8_float16",
    )
    assert loads == [("cuda", "float16"), ("cuda", "int8_float16")]
    assert transcript.duration_s == pytest.approx(5.0, abs=0.01)


def test_later_requests_for_the_model_get_the_stepped_down_one(staged_t4, model_dir, tmp_path):
    ooms, loads = staged_t4
    ooms[0] = 1
    audio = write_tone_wav(tmp_path / "tone.wav", seconds=3)
    transcribe(audio, cuda_model(model_dir, tmp_path), TranscribeOptions(vad=False))

    again = cuda_model(model_dir, tmp_path)

    assert (again.device, again.compute_type) == ("cuda", "int8_float16")
    assert len(loads) == 2, "no reload of the float16 model that ran out of memory"
    assert len(model_manager.loaded()) == 1, "the float16 model was dropped"


def test_it_gives_up_after_two_step_downs_with_a_clear_error(staged_t4, model_dir, tmp_path):
    ooms, loads = staged_t4
    ooms[0] = 99
    audio = write_tone_wav(tmp_path / "tone.wav", seconds=3)

    with pytest.raises(EngineError) as raised:
        transcribe(audio, cuda_model(model_dir, tmp_path, "float32"), TranscribeOptions(vad=False))

    assert loads == [("cuda", "float32"), ("cuda", "float16"), ("cuda", "int8_float16")]
    assert raised.value.permanent is False
    assert raised.value.message.startswith(
        "Ran out of memory decoding window 1 on cuda:0 with int8_float16 (window 1: out of "
        "memory on cuda:0 with float32; retried on cuda:0 with float16; window 1: out of "
        "memory on cuda:0 with float16; retried on cuda:0 with int8_float16)"
    )
    assert "SCRIBE_MAX_WORKERS_PER_GPU" in raised.value.message


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_decode_runs_out_of_gpu_memory_twice_completes_on_the_cpu(
    staged_t4, api, job_settings, tmp_path
):
    ooms, loads = staged_t4
    ooms[0] = 2
    job_settings.SCRIBE_DEVICE = "auto"
    job_settings.SCRIBE_CPU_THREADS = 1
    job_id = upload(api, write_tone_wav(tmp_path / "tone.wav", seconds=4), {"vad": False}).json()[
        "job_id"
    ]

    runner.job_process(job_id=job_id)

    job = Job.objects.get(pk=job_id)
    assert job.status == "completed", job.error_message
    assert loads == [("cuda", "float16"), ("cuda", "int8_float16"), ("cpu", "int8")]
    result = api.get(f"/v1/jobs/{job_id}/result?format=json")
    run = result_json(result)["run"]
    assert (run["compute_type_requested"], run["device"], run["compute_type"]) == (
        "auto",
        "cpu",
        "int8_float32",
    )
    assert run["fallbacks"] == [
        "window 1: out of memory on cuda:0 with float16; retried on cuda:0 with int8_float16",
        "window 1: out of memory on cuda:0 with int8_float16; retried on cpu with int8_float32",
    ]
    assert job.run["fallbacks"] == run["fallbacks"]
    assert job.source_path == ""
