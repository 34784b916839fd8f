"""Run the bench: configurations × manifest entries, decoded through scribe's services."""

from __future__ import annotations

import gc
import itertools
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from glossary.bias import Bias, HotwordChoice, glossary_bias
from glossary.metrics import ErrorCount, TermScore, char_errors, term_score, word_errors
from glossary.models import Glossary
from glossary.review import post_process
from glossary.services import (
    hallucination_phrases,
    llm_audit,
    rule_specs,
    term_specs,
)
from scribe.llm import llm_config
from transcription.bench.manifest import BenchError, ManifestEntry
from transcription.engine import (
    EngineError,
    LoadedModel,
    TranscribeOptions,
    model_manager,
    resolve_model,
    sampling_seed,
    token_counter,
    transcribe,
)
from transcription.engine.registry import model_checksum
from transcription.lanes import DeviceOverrides, device_plan_build, model_load

RSS_SAMPLE_INTERVAL_S = 0.02


@dataclass(frozen=True)
class BenchConfig:
    """One point of the grid: a model at a precision, decoded one way, with or without the
    glossary."""

    model: str
    compute_type: str | None  # None: what the device plan picks
    beam_size: int
    batch_size: int | None  # None: sequential decoding
    glossary: bool
    # With the glossary: "chosen" offers each window the terms a first pass heard, as jobs
    # do; "all" offers every term the prompt holds (the fixed bias, for comparison).
    hotwords: str = ""  # "" without the glossary

    @property
    def model_label(self) -> str:
        """A hub name as given; a directory by its last two parts ("tiny.en/model")."""
        path = Path(self.model)
        return "/".join(path.resolve().parts[-2:]) if path.is_dir() else self.model

    @property
    def label(self) -> str:
        name = self.model_label
        batch = f"batch {self.batch_size}" if self.batch_size else "sequential"
        parts = [name, self.compute_type or "auto", f"beam {self.beam_size}", batch]
        if self.glossary:
            parts.append(f"glossary ({self.hotwords} hotwords)")
        return " · ".join(parts)

    @property
    def setting(self) -> tuple[str | None, int, int | None, bool]:
        """Everything but the model: what two models are compared at."""
        return (self.compute_type, self.beam_size, self.batch_size, self.glossary)


def configurations(
    *,
    models: Sequence[str],
    compute_types: Sequence[str | None] = (None,),
    beam_sizes: Sequence[int] = (5,),
    batch_sizes: Sequence[int | None] = (None,),
    glossary: Sequence[bool] = (False,),
    hotwords: Sequence[str] = ("chosen",),
) -> list[BenchConfig]:
    """Return the cartesian product, model and precision varying slowest (one load each).

    The hotword choice only varies with the glossary on.
    """
    configs = [
        BenchConfig(model, compute, beam, batch, with_glossary, bias if with_glossary else "")
        for model, compute, beam, batch, with_glossary, bias in itertools.product(
            dict.fromkeys(models),
            dict.fromkeys(compute_types),
            dict.fromkeys(beam_sizes),
            dict.fromkeys(b or None for b in batch_sizes),  # 0 and None: sequential
            dict.fromkeys(glossary),
            dict.fromkeys(hotwords),
        )
    ]
    return list(dict.fromkeys(configs))


@dataclass(frozen=True)
class FileResult:
    audio: str
    reference: str
    hypothesis: str
    words: ErrorCount
    chars: ErrorCount
    terms: TermScore
    audio_s: float
    processing_s: float  # median over the repeats: decode plus post-processing

    def as_dict(self) -> dict[str, Any]:
        return {
            "audio": self.audio,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "wer": round(self.words.rate, 4),
            "cer": round(self.chars.rate, 4),
            "term_recall": _round(self.terms.recall),
            "terms_said": self.terms.said,
            "terms_missed": list(self.terms.missed),
            "terms_inserted": self.terms.inserted,
            "false_term_rate": round(self.terms.insertion_rate, 4),
            "audio_s": self.audio_s,
            "processing_s": round(self.processing_s, 4),
            "real_time_factor": round(self.processing_s / self.audio_s, 4) if self.audio_s else 0.0,
        }


@dataclass
class ConfigResult:
    config: BenchConfig
    device: str
    compute_type: str  # effective, as CTranslate2 reports it
    load_s: float
    peak_rss_mb: float
    bias: list[str]
    repeat: int
    notes: list[str] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return _pooled([f.words for f in self.files])

    @property
    def cer(self) -> float:
        return _pooled([f.chars for f in self.files])

    @property
    def terms_said(self) -> int:
        return sum(len(f.terms.said) for f in self.files)

    @property
    def terms_recalled(self) -> int:
        return sum(len(f.terms.recalled) for f in self.files)

    @property
    def term_recall(self) -> float | None:
        return self.terms_recalled / self.terms_said if self.terms_said else None

    @property
    def false_terms(self) -> int:
        return sum(f.terms.insertions for f in self.files)

    @property
    def false_term_rate(self) -> float:
        words = sum(f.terms.reference_words for f in self.files)
        return self.false_terms / words if words else 0.0

    @property
    def audio_s(self) -> float:
        return sum(f.audio_s for f in self.files)

    @property
    def processing_s(self) -> float:
        return sum(f.processing_s for f in self.files)

    @property
    def rtf(self) -> float:
        return self.processing_s / self.audio_s if self.audio_s else 0.0

    def as_dict(self, *, files: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.config.label,
            "model": self.config.model,
            "device": self.device,
            "compute_type_requested": self.config.compute_type or "auto",
            "compute_type": self.compute_type,
            "beam_size": self.config.beam_size,
            "batch_size": self.config.batch_size,
            "glossary": self.config.glossary,
            "bias": self.bias,
            "wer": round(self.wer, 4),
            "cer": round(self.cer, 4),
            "term_recall": _round(self.term_recall),
            "terms_said": self.terms_said,
            "terms_recalled": self.terms_recalled,
            "false_terms": self.false_terms,
            "false_term_rate": round(self.false_term_rate, 4),
            "audio_s": round(self.audio_s, 3),
            "processing_s": round(self.processing_s, 4),
            "real_time_factor": round(self.rtf, 4),
            "load_s": round(self.load_s, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "repeat": self.repeat,
            "notes": self.notes,
        }
        if files:
            data["files"] = [f.as_dict() for f in self.files]
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pooled(counts: Iterable[ErrorCount]) -> float:
    """Corpus rate: all edits over all reference units, so long files weigh more."""
    counts = list(counts)
    return ErrorCount(sum(c.errors for c in counts), sum(c.length for c in counts)).rate


# --- memory -----------------------------------------------------------------------------


def _rss_now_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 2**20


def _rss_peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class RssSampler:
    """Peak resident memory of this process between ``reset()`` and ``peak_mb``.

    ``getrusage`` only knows the peak of the process's whole life, which after a large
    model would hide a smaller one's, so the current RSS is sampled from /proc on a thread
    (CTranslate2 releases the GIL while it computes). Without /proc the lifetime peak is
    reported.
    """

    def __init__(self) -> None:
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._sampling = _rss_now_mb() is not None

    def __enter__(self) -> RssSampler:
        if self._sampling:
            self.reset()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self._sample()

    def _sample(self) -> None:
        now = _rss_now_mb()
        if now is not None:
            self._peak = max(self._peak, now)

    def reset(self, floor_mb: float = 0.0) -> None:
        self._peak = max(floor_mb, _rss_now_mb() or 0.0)

    @property
    def peak_mb(self) -> float:
        if not self._sampling:
            return _rss_peak_mb()
        self._sample()
        return self._peak


# --- the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Correction:
    mode: str
    terms: list
    rules: list


def _decode(
    entry: ManifestEntry,
    loaded: LoadedModel,
    config: BenchConfig,
    bias: Bias,
    correction: _Correction,
) -> tuple[str, float, float]:
    """Transcribe and post-process one file: (text, audio seconds, seconds taken)."""
    started = time.perf_counter()
    choice = None
    if config.glossary and config.hotwords == "chosen":
        choice = HotwordChoice(terms=correction.terms, count_tokens=token_counter(loaded))
    try:
        transcript = transcribe(
            entry.audio,
            loaded,
            TranscribeOptions(
                language=entry.language,
                hotwords=bias.hotwords,
                initial_prompt=bias.initial_prompt,
                beam_size=config.beam_size,
                batch_size=config.batch_size,
            ),
            select_hotwords=choice,
        )
    except EngineError as exc:
        raise BenchError(exc.message) from None
    result = post_process(
        transcript.to_dict(words=False),
        mode=correction.mode,
        terms=correction.terms,
        rules=correction.rules,
        phrases=hallucination_phrases(),
        llm_settings=llm_config() if correction.mode == "llm" else None,
        audit=llm_audit() if correction.mode == "llm" else None,
    )
    return result["text"], transcript.duration_s, time.perf_counter() - started


def _load(
    config: BenchConfig, *, device: str | None, cpu_threads: int | None
) -> tuple[LoadedModel, float, list[str]]:
    """Load a configuration's model afresh: (model, seconds to load, device plan notes)."""
    # Drop whatever an earlier configuration loaded, so this load time and memory are
    # this model's own rather than a cache hit beside another model.
    model_manager.clear()
    gc.collect()
    try:
        plan = device_plan_build(
            model=config.model,
            overrides=DeviceOverrides(
                device=device, compute_type=config.compute_type, cpu_threads=cpu_threads, workers=1
            ),
        )
        # Fetch and checksum the weights first (once per process), so the time measured is
        # what a worker pays to bring the model onto its device, the same for every load.
        resolved = resolve_model(
            config.model, models_dir=settings.SCRIBE_MODELS_DIR, offline=settings.SCRIBE_OFFLINE
        )
        model_checksum(resolved.path)
        started = time.perf_counter()
        loaded = model_load(model=config.model, plan=plan)
        load_s = time.perf_counter() - started
    except EngineError as exc:
        raise BenchError(exc.message) from None
    return loaded, load_s, [*plan.reasons, *([loaded.fallback] if loaded.fallback else [])]


def bench_run(
    *,
    entries: Sequence[ManifestEntry],
    configs: Sequence[BenchConfig],
    glossary: Glossary | None = None,
    post_correction: str = "rules",
    repeat: int = 1,
    device: str | None = None,
    cpu_threads: int | None = None,
    seed: int | None = 0,
    on_decode: Callable[[BenchConfig], None] | None = None,
) -> list[ConfigResult]:
    """Decode every entry with every configuration; hypotheses come from the first of
    ``repeat`` runs, timings are their median.

    Whisper falls back to sampling (temperature > 0) where a greedy decode fails its
    checks; ``seed`` (None: not set) seeds that sampling before every decode, so a run's
    figures repeat and do not depend on the order of files or configurations.

    A configuration with ``glossary`` biases decoding with the glossary and runs its
    post-correction (``post_correction`` mode); one without runs as a job with no glossary
    does. Both are scored against the same terms: an entry's own, else the glossary's.
    """
    if repeat < 1:
        raise BenchError("--repeat must be at least 1.")
    if any(c.glossary for c in configs) and glossary is None:
        raise BenchError("A configuration with the glossary needs a glossary.")
    terms = term_specs(glossary)
    known = [t.canonical for t in terms]
    with_glossary = _Correction(post_correction, terms, rule_specs(glossary))
    without = _Correction("none", [], rule_specs(None))
    results: list[ConfigResult] = []
    with RssSampler() as rss:
        for _, grouped in itertools.groupby(configs, key=lambda c: (c.model, c.compute_type)):
            group = list(grouped)
            rss.reset()
            loaded, load_s, notes = _load(group[0], device=device, cpu_threads=cpu_threads)
            load_peak_mb = rss.peak_mb
            count_tokens = token_counter(loaded)
            for config in group:
                rss.reset(load_peak_mb)
                bias = (
                    # As jobs do: terms chosen per window are offered where heard, and
                    # the prompt keeps only those kept out of hotwords.
                    glossary_bias(
                        terms=terms,
                        count_tokens=count_tokens,
                        hotwords_per_window=config.hotwords == "chosen",
                    )
                    if config.glossary
                    else Bias(hotwords=None, initial_prompt=None)
                )
                correction = with_glossary if config.glossary else without
                files = [
                    _score(
                        entry,
                        _repeated(entry, loaded, config, bias, correction, repeat, seed, on_decode),
                        known,
                    )
                    for entry in entries
                ]
                results.append(
                    ConfigResult(
                        config=config,
                        device=loaded.device,
                        compute_type=loaded.compute_type,
                        load_s=load_s,
                        peak_rss_mb=rss.peak_mb,
                        bias=bias.kept,
                        repeat=repeat,
                        notes=notes,
                        files=files,
                    )
                )
            del loaded  # let model_manager.clear() in the next load free it
    model_manager.clear()
    return results


def _repeated(
    entry: ManifestEntry,
    loaded: LoadedModel,
    config: BenchConfig,
    bias: Bias,
    correction: _Correction,
    repeat: int,
    seed: int | None,
    on_decode: Callable[[BenchConfig], None] | None,
) -> tuple[str, float, float]:
    """Decode ``entry`` ``repeat`` times: the first text, the audio length, the median time."""
    runs = []
    for _ in range(repeat):
        if seed is not None:
            sampling_seed(seed)
        runs.append(_decode(entry, loaded, config, bias, correction))
        if on_decode:
            on_decode(config)
    text, audio_s, _ = runs[0]
    return text, audio_s, statistics.median(r[2] for r in runs)


def _score(entry: ManifestEntry, decoded: tuple[str, float, float], known: list[str]) -> FileResult:
    hypothesis, audio_s, processing_s = decoded
    return FileResult(
        audio=str(entry.audio),
        reference=entry.reference,
        hypothesis=hypothesis,
        words=word_errors(entry.reference, hypothesis),
        chars=char_errors(entry.reference, hypothesis),
        terms=term_score(entry.reference, hypothesis, said=entry.terms, known=known),
        audio_s=audio_s,
        processing_s=processing_s,
    )
