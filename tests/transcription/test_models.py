from __future__ import annotations

import hashlib
import shutil
import threading

import pytest

from transcription.engine import ModelNotFoundError, model_manager, resolve_model
from transcription.engine.registry import count_parameters, model_size, parameters_millions
from transcription.engine.testmodel import SIZES, build_tokenizer
from transcription.models import Job


def test_a_missing_model_offline_names_the_model_the_places_searched_and_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("large-v3", models_dir=tmp_path, offline=True)

    message = caught.value.message
    assert "'large-v3'" in message
    assert str(tmp_path / "large-v3") in message
    assert "offline" in message
    assert "SCRIBE_BATCH_MODEL" in message and "--model" in message
    assert "Traceback" not in message


def test_a_failed_download_is_reported_without_the_hub_clients_stack_trace(tmp_path):
    # HF_HUB_OFFLINE=1 (set for every test) makes the hub client refuse at once.
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("large-v3-turbo", models_dir=tmp_path, offline=False)

    assert "downloading it failed" in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_unknown_model_name_lists_the_names_that_exist(tmp_path):
    with pytest.raises(ModelNotFoundError, match="large-v3-turbo"):
        resolve_model("large-v9", models_dir=tmp_path, offline=True)


def test_a_directory_without_weights_is_refused(tmp_path):
    (tmp_path / "empty-model").mkdir()

    with pytest.raises(ModelNotFoundError, match="model.bin missing"):
        resolve_model(str(tmp_path / "empty-model"), models_dir=tmp_path, offline=True)


def test_a_hub_name_is_found_in_the_models_directory_without_a_download(tmp_path, model_dir):
    shutil.copytree(model_dir, tmp_path / "large-v3")

    resolved = resolve_model("large-v3", models_dir=tmp_path, offline=True)

    assert resolved.path == (tmp_path / "large-v3").resolve()


def test_parameters_are_counted_from_the_weights_file(model_dir):
    d = SIZES["micro"].d_model
    vocab = build_tokenizer().get_vocab_size(with_added_tokens=True)
    count = count_parameters(model_dir)

    # The decoder embeddings and the output projection alone are 2 * vocab * d weights.
    assert count > 2 * vocab * d
    assert count < 2 * vocab * d + 1_000_000
    assert parameters_millions("whatever", model_dir) == pytest.approx(count / 1e6)


def test_a_model_not_on_disk_is_sized_from_its_published_parameter_count(tmp_path):
    size = model_size("large-v3", models_dir=tmp_path)

    assert size.params_millions == 1550
    assert size.footprint_mb("cuda", "float16")[1] == "estimated"


def test_the_manager_loads_each_model_once_and_shares_it_across_threads(model_dir, tmp_path):
    results = []

    def load():
        results.append(
            model_manager.get(
                str(model_dir),
                models_dir=tmp_path,
                offline=True,
                device="cpu",
                compute_type="int8",
                cpu_threads=1,
            )
        )

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    assert all(r is results[0] for r in results)
    assert all(r.whisper is results[0].whisper for r in results)


def test_the_manager_keeps_separate_models_per_compute_type(model_dir, tmp_path):
    int8 = model_manager.get(
        str(model_dir),
        models_dir=tmp_path,
        offline=True,
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
    )
    fp32 = model_manager.get(
        str(model_dir),
        models_dir=tmp_path,
        offline=True,
        device="cpu",
        compute_type="float32",
        cpu_threads=1,
    )

    assert int8.whisper is not fp32.whisper
    assert (int8.compute_type, fp32.compute_type) == ("int8_float32", "float32")
    digest = hashlib.sha256((model_dir / "model.bin").read_bytes()).hexdigest()
    assert int8.checksum == fp32.checksum == f"sha256:{digest}"


def finish(job: Job) -> bool:
    return job.mark_completed(
        result_path="results/x.json", language="en", run={}, metrics={"audio_duration_s": 3.0}
    )


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.CANCELLED, Job.Status.FAILED, Job.Status.QUEUED])
def test_a_job_that_left_processing_while_its_worker_finished_is_not_completed(owner_key, status):
    # The worker's copy still says processing; the row was cancelled, failed or requeued.
    job = Job.objects.create(owner=owner_key[0].owner, status=Job.Status.PROCESSING)
    Job.objects.filter(pk=job.pk).update(status=status)

    assert finish(job) is False

    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.result_path, row.finished_at) == (status, "", None)


@pytest.mark.django_db
def test_a_processing_job_is_completed_once(owner_key):
    job = Job.objects.create(owner=owner_key[0].owner, status=Job.Status.PROCESSING)
    stale = Job.objects.get(pk=job.pk)  # a second worker's copy, read before the first won

    assert finish(job) is True
    assert finish(stale) is False
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.result_path, row.total_s) == ("completed", "results/x.json", 3.0)
