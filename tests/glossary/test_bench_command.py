from __future__ import annotations

import json
import shutil
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Owner
from glossary.metrics import (
    ErrorCount,
    char_errors,
    term_occurrences,
    term_score,
    word_errors,
)
from glossary.models import Glossary, Term
from tests.conftest import IN_CI, shared_clip
from tests.media import write_tone_wav
from transcription.bench import (
    BenchConfig,
    ConfigResult,
    configurations,
    hybrid_verdicts,
    manifest_read,
    verdict_line,
)
from transcription.bench.runner import FileResult
from transcription.engine import probe

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def jfk_manifest(tmp_path: Path, **extra) -> Path:
    manifest = tmp_path / "set.jsonl"
    entry = {"audio": str(shared_clip("jfk.flac")), "reference": REFERENCE, "language": "en"}
    manifest.write_text(json.dumps({**entry, **extra}) + "\n")
    return manifest


def glossary_with(*terms: str) -> Glossary:
    glossary = Glossary.objects.create(owner=Owner.objects.create(name="o"), name="g")
    for term in terms:
        Term.objects.create(glossary=glossary, canonical=term)
    return glossary


def bench_json(*args: str) -> dict:
    out = StringIO()
    call_command("bench", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


# --- manifests --------------------------------------------------------------------------


def test_a_jsonl_manifest_reads_audio_relative_to_itself_with_language_and_terms(tmp_path):
    (tmp_path / "clips").mkdir()
    write_tone_wav(tmp_path / "clips" / "a.wav", seconds=0.5)
    write_tone_wav(tmp_path / "clips" / "b.wav", seconds=0.5)
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(
        json.dumps(
            {"audio": "a.wav", "reference": "vLLM 써요", "language": "ko", "terms": ["vLLM"]}
        )
        + "\n\n"
        + json.dumps({"audio": "b.wav", "reference": "plain"})
        + "\n"
    )
    (tmp_path / "clips" / "set.jsonl").write_text(manifest.read_text())

    first, second = manifest_read(path=tmp_path / "clips" / "set.jsonl")

    assert first.audio == (tmp_path / "clips" / "a.wav").resolve()
    assert (first.reference, first.language, first.terms) == ("vLLM 써요", "ko", ("vLLM",))
    assert (second.language, second.terms) == (None, None), "no terms: the glossary's are used"


def test_a_csv_manifest_splits_terms_on_semicolons_and_leaves_blank_cells_unset(tmp_path):
    write_tone_wav(tmp_path / "a.wav", seconds=0.5)
    write_tone_wav(tmp_path / "b.wav", seconds=0.5)
    manifest = tmp_path / "set.csv"
    manifest.write_text(
        "audio,reference,language,terms\n"
        'a.wav,"We use vLLM, then Redis.",en,vLLM; Redis\n'
        "b.wav,그냥 말,,\n",
        encoding="utf-8",
    )

    first, second = manifest_read(path=manifest)

    assert first.audio == (tmp_path / "a.wav").resolve()
    assert first.reference == "We use vLLM, then Redis."
    assert (first.language, first.terms) == ("en", ("vLLM", "Redis"))
    assert (second.reference, second.language, second.terms) == ("그냥 말", None, None)


def test_a_csv_manifest_without_a_reference_column_is_refused(tmp_path):
    manifest = tmp_path / "set.csv"
    manifest.write_text("audio,text\na.wav,hello\n")

    with pytest.raises(CommandError, match="set.csv:1: .*missing reference"):
        call_command("bench", str(manifest))


def test_bench_refuses_a_manifest_line_without_a_reference_by_its_line_number(tmp_path):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text('{"audio": "a.wav", "reference": "x"}\n{"audio": "a.wav"}\n')
    write_tone_wav(tmp_path / "a.wav", seconds=0.5)

    with pytest.raises(CommandError, match=r"set.jsonl:2: missing 'reference'"):
        call_command("bench", str(manifest))


def test_bench_refuses_a_manifest_naming_audio_that_is_not_there(tmp_path):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text('{"audio": "gone.wav", "reference": "x"}\n')

    with pytest.raises(CommandError, match=r"set.jsonl:1: .*gone.wav does not exist"):
        call_command("bench", str(manifest))


def test_bench_refuses_terms_that_are_not_a_list(tmp_path):
    write_tone_wav(tmp_path / "a.wav", seconds=0.5)
    manifest = tmp_path / "set.jsonl"
    manifest.write_text('{"audio": "a.wav", "reference": "x", "terms": "vLLM"}\n')

    with pytest.raises(CommandError, match="terms must be a list"):
        call_command("bench", str(manifest))


# --- configurations ---------------------------------------------------------------------


def test_configurations_are_the_cartesian_product_with_each_model_precision_together():
    configs = configurations(
        models=["large-v3", "large-v3-turbo"],
        compute_types=["int8", "float16"],
        beam_sizes=[1, 5],
        batch_sizes=[None, 8],
        glossary=[True, False],
    )

    assert len(configs) == 2 * 2 * 2 * 2 * 2
    assert len(set(configs)) == len(configs)
    # Model and precision change slowest, so each pair is loaded once.
    pairs = [(c.model, c.compute_type) for c in configs]
    assert pairs == [p for p in dict.fromkeys(pairs) for _ in range(8)]
    assert configs[0] == BenchConfig("large-v3", "int8", 1, None, True, "chosen")
    assert configs[-1] == BenchConfig("large-v3-turbo", "float16", 5, 8, False)


def test_the_hotword_choice_only_varies_with_the_glossary_on():
    configs = configurations(models=["m"], glossary=[True, False], hotwords=["chosen", "all"])

    assert [(c.glossary, c.hotwords) for c in configs] == [
        (True, "chosen"),
        (True, "all"),
        (False, ""),
    ]
    assert configs[1].label.endswith("glossary (all hotwords)")


def test_configurations_treat_batch_size_zero_as_sequential_and_drop_repeats():
    configs = configurations(models=["m", "m"], beam_sizes=[5, 5], batch_sizes=[0, None])

    assert configs == [BenchConfig("m", None, 5, None, False)]
    assert configs[0].label == "m · auto · beam 5 · sequential"


def test_bench_runs_each_configuration_with_and_without_the_glossary(
    tmp_path, model_dir, models_dir
):
    glossary = glossary_with("Americans")

    report = bench_json(
        str(jfk_manifest(tmp_path)),
        "--models",
        str(model_dir),
        "--beam-sizes",
        "1,2",
        "--glossary",
        str(glossary.pk),
        "--compare-glossary",
    )

    got = [(c["beam_size"], c["glossary"]) for c in report["configurations"]]
    assert got == [(1, True), (1, False), (2, True), (2, False)]
    assert [c["bias"] for c in report["configurations"]] == [["Americans"], [], ["Americans"], []]
    assert len(report["glossary_effects"]) == 2
    assert report["glossary_effects"][0].startswith("glossary effect (")


# --- term arithmetic --------------------------------------------------------------------


def test_term_recall_needs_each_term_as_often_as_the_reference_says_it():
    score = term_score(
        "vLLM is fast; vLLM on Kubernetes serves the API",
        "vllm is fast; vLLM on Kubernetes serves the API",
        said=["vLLM", "Kubernetes", "API"],
    )

    assert score.said == {"vLLM": 2, "Kubernetes": 1, "API": 1}
    assert score.recalled == ("Kubernetes", "API")
    assert score.missed == ("vLLM",), "once of twice, and 'vllm' is not 'vLLM'"
    assert score.recall == pytest.approx(2 / 3)


def test_term_recall_takes_the_glossary_terms_the_reference_spells_when_none_are_listed():
    score = term_score(
        "we ship with Docker", "we ship with Docker", said=None, known=["Docker", "Redis"]
    )

    assert score.said == {"Docker": 1}
    assert score.recall == 1.0
    assert term_score("no terms here", "no terms here", said=None, known=["Redis"]).recall is None


def test_a_listed_term_the_reference_does_not_spell_is_still_expected_once():
    score = term_score("브이엘엘엠을 써요", "vLLM을 써요", said=["vLLM"])

    assert score.said == {"vLLM": 1}
    assert score.recall == 1.0
    assert score.insertions == 0, "said, so not a false insertion"


def test_false_terms_are_known_terms_beyond_the_reference_per_reference_word():
    score = term_score(
        "we deploy on Kubernetes with Redis in a small cluster",  # 10 words
        "we deploy on Kubernetes Kubernetes with Redis in a small gRPC cluster",
        said=["Kubernetes"],
        known=["Kubernetes", "Redis", "gRPC", "PyTorch"],
    )

    # Redis is not listed as said, but the reference spells it: not a false insertion.
    assert score.inserted == {"Kubernetes": 1, "gRPC": 1}
    assert score.insertions == 2
    assert score.insertion_rate == pytest.approx(2 / 10)
    assert score.recall == 1.0


def test_a_term_counts_as_whole_latin_words_but_may_touch_hangul():
    assert term_occurrences("CI 파이프라인과 CIA, CICD", "CI") == 1
    assert term_occurrences("API를 호출하고 API.", "API") == 2
    assert term_occurrences("use gRPC-web", "gRPC") == 1
    assert term_occurrences("Hugging Face에서", "Hugging Face") == 1
    assert term_occurrences("쿠버네티스를", "쿠버네티스") == 1


def test_error_rates_normalise_before_jiwer_aligns():
    assert word_errors("Hello, World!", "hello world") == ErrorCount(0, 2)
    assert word_errors("a b c d", "a x c") == ErrorCount(2, 4)
    assert char_errors("안녕 하세요", "안녕하세요") == ErrorCount(0, 5), "spaces do not count"
    assert char_errors("", "abc") == ErrorCount(3, 0)
    assert word_errors("a b", "") == ErrorCount(2, 2)


# --- results and the verdict ------------------------------------------------------------


def result(
    model: str, *, wer_errors: int, said: int, recalled: int, seconds: float, words: int = 10, **kw
):
    reference = " ".join(f"w{i}" for i in range(words))
    terms = [f"T{i}" for i in range(said)]
    hypothesis = " ".join(terms[:recalled])
    file = FileResult(
        audio="a.wav",
        reference=reference,
        hypothesis=hypothesis,
        words=ErrorCount(wer_errors, words),
        chars=ErrorCount(wer_errors * 2, words * 4),
        terms=term_score(reference, hypothesis, said=terms),
        audio_s=float(words),
        processing_s=seconds,
    )
    config = BenchConfig(model, "int8", 5, None, kw.get("glossary", False))
    return ConfigResult(config, "cpu", "int8", 1.0, 300.0, [], 1, files=[file])


def test_results_pool_edits_and_times_over_every_file():
    one = result("m", wer_errors=1, said=2, recalled=1, seconds=2.0, words=10)
    two = result("m", wer_errors=5, said=2, recalled=2, seconds=1.0, words=30)
    one.files.extend(two.files)

    # All edits over all words (6 / 40), not the mean of the files' rates (0.1 and 0.17).
    assert one.wer == pytest.approx(6 / 40)
    assert one.cer == pytest.approx(12 / 160)
    assert (one.terms_recalled, one.terms_said, one.term_recall) == (3, 4, 0.75)
    assert one.rtf == pytest.approx(3.0 / 40.0)


def test_the_verdict_names_the_more_accurate_model_and_its_speed_cost():
    batch = result("large-v3", wer_errors=1, said=10, recalled=9, seconds=4.0)
    live = result("large-v3-turbo", wer_errors=2, said=10, recalled=8, seconds=1.0)

    line = verdict_line(live, batch)

    assert line.startswith("verdict: large-v3 is more accurate than large-v3-turbo")
    assert "CER 0.050 vs 0.100" in line and "term recall 90.0% vs 80.0%" in line
    assert "large-v3 takes 4.00× the time of large-v3-turbo (RTF 0.400 vs 0.100)" in line


def test_the_verdict_says_when_cer_and_term_recall_disagree():
    a = result("a", wer_errors=1, said=10, recalled=7, seconds=1.0)
    b = result("b", wer_errors=2, said=10, recalled=9, seconds=2.0)

    line = verdict_line(a, b)

    assert "no clear winner" in line
    assert "CER favours a, term recall favours b" in line
    assert "a is also faster, 2.00×" in line


def test_verdicts_pair_two_models_at_each_shared_setting_only():
    results = [
        result("a", wer_errors=1, said=1, recalled=1, seconds=1.0),
        result("a", wer_errors=1, said=1, recalled=1, seconds=1.0, glossary=True),
        result("b", wer_errors=1, said=1, recalled=1, seconds=1.0),
    ]

    (line,) = hybrid_verdicts(results)

    assert "equally accurate" in line
    assert hybrid_verdicts(results[:2]) == [], "one model: nothing to choose"


# --- the command ------------------------------------------------------------------------


def test_bench_json_reports_accuracy_terms_speed_load_and_memory(tmp_path, model_dir, models_dir):
    glossary = glossary_with("Americans", "Kubernetes")

    report = bench_json(
        str(jfk_manifest(tmp_path)),
        "--models",
        str(model_dir),
        "--compute-types",
        "int8",
        "--glossary",
        str(glossary.pk),
        "--repeat",
        "2",
    )

    assert report["files"] == 1 and report["glossary"] == glossary.pk
    assert report["audio_s"] == pytest.approx(11.0, abs=0.01)
    (config,) = report["configurations"]
    assert config["label"].endswith("· int8 · beam 5 · sequential · glossary (chosen hotwords)")
    assert config["model"] == str(model_dir) and config["compute_type_requested"] == "int8"
    assert config["device"] == "cpu" and config["repeat"] == 2
    assert config["bias"] == ["Americans", "Kubernetes"]
    assert config["wer"] >= 0.5, "random weights do not say JFK's words"
    assert 0.0 <= config["cer"] <= 2.0
    assert config["terms_said"] == 1, "the glossary's terms the reference spells"
    assert config["term_recall"] == config["terms_recalled"] / 1
    assert config["load_s"] > 0 and config["peak_rss_mb"] > 50
    assert config["real_time_factor"] == pytest.approx(
        config["processing_s"] / config["audio_s"], rel=0.01
    )
    (file,) = config["files"]
    assert set(file) >= {"hypothesis", "terms_said", "terms_missed", "terms_inserted", "wer"}
    assert file["terms_said"] == {"Americans": 1}
    assert report["verdicts"] == [] and report["glossary_effects"] == []


def test_bench_prints_a_table_and_a_verdict_for_two_models(tmp_path, model_dir, models_dir):
    other = shutil.copytree(model_dir, tmp_path / "turbo")
    out = StringIO()

    call_command(
        "bench",
        str(jfk_manifest(tmp_path, terms=["Americans"])),
        "--models",
        f"{model_dir},{other}",
        "--beam-sizes",
        "1",
        stdout=out,
        stderr=StringIO(),
    )

    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["configuration", "runs", "on", "WER"]
    assert len([line for line in lines if "· beam 1 · sequential" in line]) == 2
    (verdict,) = [line for line in lines if line.startswith("verdict")]
    assert f"{tmp_path.name}/turbo" in verdict and "RTF" in verdict


def test_compare_glossary_needs_a_glossary(tmp_path, models_dir):
    with pytest.raises(CommandError, match="--compare-glossary needs --glossary"):
        call_command("bench", str(tmp_path / "set.jsonl"), "--compare-glossary")


def test_plot_draws_the_configurations_as_a_png(tmp_path, model_dir, models_dir):
    if not IN_CI:
        pytest.importorskip("matplotlib", reason="the bench extra is not installed")
    chart = tmp_path / "out" / "bench.png"

    bench_json(
        str(jfk_manifest(tmp_path)),
        "--models",
        str(model_dir),
        "--beam-sizes",
        "1,2",
        "--plot",
        str(chart),
    )

    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and height > 300


def test_plot_without_matplotlib_names_the_bench_extra_before_decoding(
    tmp_path, monkeypatch, models_dir
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError

    with pytest.raises(CommandError, match=r"pip install -e '\.\[bench\]'"):
        call_command("bench", str(tmp_path / "none.jsonl"), "--plot", str(tmp_path / "a.png"))


# --- synthesis --------------------------------------------------------------------------


def require_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed (apt-get install espeak-ng)"
        if IN_CI:
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)


def test_synthesize_speaks_each_line_and_writes_a_manifest_the_bench_reads(tmp_path):
    require_espeak()
    lines = tmp_path / "lines.jsonl"
    lines.write_text(
        json.dumps(
            {"text": "We serve it with vLLM on Kubernetes.", "terms": ["vLLM", "Kubernetes"]}
        )
        + "\n"
        + json.dumps({"text": "-Redis first, then gRPC.", "terms": ["Redis", "gRPC"]})
        + "\n"
    )
    out = StringIO()

    call_command("bench", "--synthesize", str(lines), "--out", str(tmp_path / "speech"), stdout=out)

    manifest = tmp_path / "speech" / "manifest.jsonl"
    assert str(manifest) in out.getvalue()
    first, second = manifest_read(path=manifest)
    assert first.audio == (tmp_path / "speech" / "001.wav").resolve()
    assert (first.reference, first.language) == ("We serve it with vLLM on Kubernetes.", "en")
    assert first.terms == ("vLLM", "Kubernetes")
    assert second.reference == "-Redis first, then gRPC.", "a leading dash is text, not an option"
    for entry in (first, second):
        assert 1.0 < (probe(entry.audio).duration_s or 0) < 10.0


def test_synthesize_passes_the_voice_to_espeak_and_reports_a_bad_one(tmp_path):
    require_espeak()
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"text": "Hallo Welt", "terms": []}) + "\n")

    call_command(
        "bench",
        "--synthesize",
        str(lines),
        "--out",
        str(tmp_path / "de"),
        "--voice",
        "de",
        stdout=StringIO(),
    )
    with pytest.raises(CommandError, match="voice 'xx-nowhere'.*espeak-ng --voices"):
        call_command(
            "bench",
            "--synthesize",
            str(lines),
            "--out",
            str(tmp_path / "x"),
            "--voice",
            "xx-nowhere",
        )

    (entry,) = manifest_read(path=tmp_path / "de" / "manifest.jsonl")
    assert entry.language == "de"


def test_synthesize_without_espeak_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no espeak-ng on it
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"text": "hi", "terms": []}) + "\n")

    with pytest.raises(CommandError, match="apt-get install espeak-ng"):
        call_command("bench", "--synthesize", str(lines), "--out", str(tmp_path / "speech"))
