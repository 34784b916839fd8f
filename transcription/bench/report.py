"""Bench reports: the terminal table, the hybrid verdict, JSON and a bar chart."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transcription.bench.manifest import BenchError
from transcription.bench.runner import ConfigResult

# Differences below these are noise, not a verdict.
CER_TIE = 0.0005
RECALL_TIE = 0.0005
PLOT_EXTRA = "bench"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def table_render(results: Sequence[ConfigResult]) -> str:
    """Return a fixed-width table, one configuration a row."""
    header = (
        "configuration",
        "runs on",
        "WER",
        "CER",
        "term recall",
        "false terms",
        "RTF",
        "load s",
        "peak RSS MB",
    )
    rows = [header]
    for r in results:
        recall = _percent(r.term_recall)
        if r.term_recall is not None:
            recall += f" ({r.terms_recalled}/{r.terms_said})"
        rows.append(
            (
                r.config.label,
                f"{r.device} {r.compute_type}",
                f"{r.wer:.3f}",
                f"{r.cer:.3f}",
                recall,
                f"{r.false_term_rate:.2%} ({r.false_terms})",
                f"{r.rtf:.3f}",
                f"{r.load_s:.2f}",
                f"{r.peak_rss_mb:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _compare(a: float | None, b: float | None, tie: float, *, lower_is_better: bool) -> int:
    """1 when a is better, -1 when b is, 0 for a tie or when either is unknown."""
    if a is None or b is None or abs(a - b) < tie:
        return 0
    return 1 if (a < b) == lower_is_better else -1


def _figures(a: ConfigResult, b: ConfigResult) -> str:
    figures = f"CER {a.cer:.3f} vs {b.cer:.3f}"
    if a.term_recall is not None or b.term_recall is not None:
        figures += f", term recall {_percent(a.term_recall)} vs {_percent(b.term_recall)}"
    return figures


def verdict_line(a: ConfigResult, b: ConfigResult, *, setting: str | None = None) -> str:
    """Say which of two models is more accurate (CER, term recall) and at what speed."""
    by_cer = _compare(a.cer, b.cer, CER_TIE, lower_is_better=True)
    by_recall = _compare(a.term_recall, b.term_recall, RECALL_TIE, lower_is_better=False)
    prefix = f"verdict ({setting}): " if setting else "verdict: "
    if by_cer and by_recall and by_cer != by_recall:
        name_a, name_b = a.config.model_label, b.config.model_label
        better_cer, better_recall = (name_a, name_b) if by_cer > 0 else (name_b, name_a)
        return (
            f"{prefix}no clear winner between {name_a} and {name_b} ({_figures(a, b)}): CER "
            f"favours {better_cer}, term recall favours {better_recall}; {_speed(a, b)}."
        )
    winner = by_cer or by_recall
    if not winner:
        return (
            f"{prefix}{a.config.model_label} and {b.config.model_label} are equally accurate "
            f"({_figures(a, b)}); {_speed(a, b)}."
        )
    best, other = (a, b) if winner > 0 else (b, a)
    return (
        f"{prefix}{best.config.model_label} is more accurate than {other.config.model_label} "
        f"({_figures(best, other)}); {_speed(best, other)}."
    )


def _speed(a: ConfigResult, b: ConfigResult) -> str:
    name_a, name_b = a.config.model_label, b.config.model_label
    if not a.rtf or not b.rtf:
        return f"speed not comparable (RTF {a.rtf:.3f} vs {b.rtf:.3f})"
    ratio = a.rtf / b.rtf
    if ratio >= 1:
        return f"{name_a} takes {ratio:.2f}× the time of {name_b} (RTF {a.rtf:.3f} vs {b.rtf:.3f})"
    return f"{name_a} is also faster, {1 / ratio:.2f}× (RTF {a.rtf:.3f} vs {b.rtf:.3f})"


def hybrid_verdicts(results: Sequence[ConfigResult]) -> list[str]:
    """With exactly two models, one verdict per setting both were run at."""
    models = list(dict.fromkeys(r.config.model for r in results))
    if len(models) != 2:
        return []
    found = {(r.config.model, r.config.setting): r for r in results}
    settings = list(dict.fromkeys(r.config.setting for r in results))
    lines = []
    for setting in settings:
        a, b = found.get((models[0], setting)), found.get((models[1], setting))
        if a is None or b is None:
            continue
        label = a.config.label.split(" · ", 1)[1] if len(settings) > 1 else None
        lines.append(verdict_line(a, b, setting=label))
    return lines


def glossary_effects(results: Sequence[ConfigResult]) -> list[str]:
    """For each configuration run with and without the glossary, what the glossary did."""
    found = {r.config: r for r in results}
    lines = []
    for on in results:
        if not on.config.glossary:
            continue
        off = found.get(dataclasses.replace(on.config, glossary=False, hotwords=""))
        if off is None:
            continue
        label = f"{off.config.label}, {on.config.hotwords} hotwords"
        lines.append(
            f"glossary effect ({label}): WER {off.wer:.3f} → {on.wer:.3f}, "
            f"CER {off.cer:.3f} → {on.cer:.3f}, term recall {_percent(off.term_recall)} → "
            f"{_percent(on.term_recall)}, false terms {off.false_term_rate:.2%} → "
            f"{on.false_term_rate:.2%}, RTF {off.rtf:.3f} → {on.rtf:.3f}"
        )
    return lines


def report_json(
    results: Sequence[ConfigResult], *, manifest: Path, glossary_id: int | None
) -> dict[str, Any]:
    return {
        "manifest": str(manifest),
        "files": len(results[0].files) if results else 0,
        "audio_s": round(results[0].audio_s, 3) if results else 0.0,
        "glossary": glossary_id,
        "configurations": [r.as_dict() for r in results],
        "glossary_effects": glossary_effects(results),
        "verdicts": hybrid_verdicts(results),
    }


# --- the chart --------------------------------------------------------------------------


def plot_available() -> None:
    """Raise BenchError naming the extra when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError(
            "--plot needs matplotlib, in scribe's optional extra "
            f"'{PLOT_EXTRA}': pip install -e '.[{PLOT_EXTRA}]' (or pip install 'matplotlib>=3.8')."
        ) from None


ACCURACY_BARS = (
    ("WER", "wer", "#4c72b0"),
    ("CER", "cer", "#55a868"),
    ("term recall", "term_recall", "#c44e52"),
    ("false-term rate", "false_term_rate", "#8172b2"),
)


def plot_write(results: Sequence[ConfigResult], *, path: Path, title: str) -> Path:
    """Draw per configuration its error rates, term recall, false-term rate and RTF."""
    plot_available()
    # The object API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    # The model on one line, how it ran on the next: long directory names stay readable.
    labels = [r.config.label.replace(" · ", "\n", 1) for r in results]
    positions = list(range(len(results)))
    figure = Figure(figsize=(14, 2.4 + 1.1 * len(results)), layout="constrained")
    FigureCanvasAgg(figure)
    accuracy, speed = figure.subplots(1, 2, sharey=True, width_ratios=(3, 1.2))
    height = 0.8 / len(ACCURACY_BARS)
    top = 1.0
    for index, (name, key, colour) in enumerate(ACCURACY_BARS):
        values: list[float | None] = [getattr(r, key) for r in results]
        shown = [v or 0.0 for v in values]
        top = max(top, *shown)
        bars = accuracy.barh(
            [p - 0.4 + height * (index + 0.5) for p in positions],
            shown,
            height=height * 0.9,
            color=colour,
            label=name,
        )
        texts = [_percent(v) if key != "false_term_rate" else f"{v:.2%}" for v in values]
        accuracy.bar_label(bars, labels=texts, padding=3, fontsize=8)
    accuracy.set_xlim(0, top * 1.15)
    accuracy.xaxis.set_major_formatter(PercentFormatter(1.0))
    accuracy.set_yticks(positions, labels)
    accuracy.invert_yaxis()
    accuracy.set_xlabel(
        "share of reference words, characters or terms\n(lower is better, except term recall)"
    )
    accuracy.set_title("accuracy")
    accuracy.grid(axis="x", alpha=0.3)
    accuracy.legend(loc="lower center", bbox_to_anchor=(0.5, 1.05), ncols=len(ACCURACY_BARS))

    rtfs = [r.rtf for r in results]
    bars = speed.barh(positions, rtfs, height=0.5, color="#dd8452", label="real-time factor")
    speed.bar_label(bars, labels=[f"{v:.3f}" for v in rtfs], padding=3, fontsize=8)
    speed.set_xlim(0, max([*rtfs, 0.01]) * 1.3)
    speed.xaxis.set_major_locator(MaxNLocator(4))
    speed.set_xlabel("processing time ÷ audio duration\n(lower is faster)")
    speed.set_title("speed")
    speed.grid(axis="x", alpha=0.3)
    speed.legend(loc="lower center", bbox_to_anchor=(0.5, 1.05))
    figure.suptitle(title, fontsize=13)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
