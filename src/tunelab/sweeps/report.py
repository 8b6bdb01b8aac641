"""What ``tunelab compare`` writes: the runs and summary tables (text, CSV, Markdown) and compare.png (the
metric against the first swept key, 95% confidence intervals as error bars; the top runs' validation curves)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from tunelab.sweeps import stats


def _fmt(value) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.4f}" if isinstance(value, float) else str(value))
    )


def tables(
    runs: list,
    groups: list,
    keys: list[str],
    metric: str,
    best,
    over: tuple[str, ...] = ("seed",),
    tests: dict | None = None,
):
    """(runs header, runs rows, summary header, summary rows): plain lists, for print, CSV and Markdown."""
    metric_names = sorted({m for run in runs for m in run.metrics if m.startswith("test/")}) or sorted(
        {m for run in runs for m in run.metrics}
    )
    best_runs = {id(r) for r in best.runs} if best else set()
    run_header = ["best", "run", "status", *keys, *metric_names]
    run_rows = [
        [
            "*" if id(r) in best_runs and r.status == "completed" else "",
            r.label,
            r.status,
            *[r.overrides.get(k, "") for k in keys],
            *[_fmt(r.metrics.get(m)) for m in metric_names],
        ]
        for r in runs
    ]
    config_keys = [k for k in keys if k not in over]
    summary_header = [
        "best",
        *config_keys,
        f"{metric} mean",
        "std",
        "median",
        "n",
        "failed/unfinished",
        "ci95_low",
        "ci95_high",
        "p_vs_best",
        "test",
    ]
    tests = tests or {}
    none = stats.Comparison("", 0, math.nan)
    summary_rows = [
        [
            "*" if g is best else "",
            *g.key,
            _fmt(g.mean),
            _fmt(g.std),
            _fmt(g.median),
            g.n,
            sum(r.status != "completed" for r in g.runs),
            *map(_fmt, g.ci95),
            _fmt(tests.get(id(g), none).p_holm),
            tests.get(id(g), none).test,
        ]
        for g in groups
    ]
    return run_header, run_rows, summary_header, summary_rows


def text_table(header: list, rows: list[list]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def markdown_table(header: list, rows: list[list]) -> str:
    def line(row):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _val_curve(run, metric: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the validation twin of ``metric`` from the run's csv/metrics.csv."""
    name = "val/" + metric.split("/", 1)[-1]
    path = run.path / "csv" / "metrics.csv"
    steps, values = [], []
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get(name):
                    steps.append(float(row["step"]))
                    values.append(float(row[name]))
    return steps, values


def plot(
    path: Path, groups: list, keys: list[str], metric: str, mode: str, top: int, over: tuple[str, ...] = ("seed",)
) -> None:
    """Left: the metric against the first swept key, one line per combination of the other keys
    (mean over seeds, error bars = the 95% confidence interval of the mean; none with one run).
    Right: validation curves of the top runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config_keys = [k for k in keys if k not in over]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if config_keys:
        x_key, others = config_keys[0], config_keys[1:]
        lines: dict[tuple, list[tuple]] = {}
        for g in groups:
            x = _number(g.key[0])
            if g.values and x is not None:
                low, high = g.ci95
                half = 0.0 if math.isnan(low) else (high - low) / 2
                lines.setdefault(tuple(g.key[1:]), []).append((x, g.mean, half))
        for other, points in sorted(lines.items()):
            points.sort()
            label = ", ".join(f"{k}={v}" for k, v in zip(others, other)) or metric
            left.errorbar(
                [p[0] for p in points],
                [p[1] for p in points],
                yerr=[p[2] for p in points],
                marker="o",
                capsize=3,
                label=label,
            )
        xs = [p[0] for pts in lines.values() for p in pts]
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
            left.set_xscale("log")
        left.set_xlabel(x_key)
        if left.lines:
            left.legend(fontsize=8)
    else:
        halves = [0.0 if math.isnan(g.ci95[0]) else (g.ci95[1] - g.ci95[0]) / 2 for g in groups]
        left.bar(range(len(groups)), [g.mean for g in groups], yerr=halves, capsize=3)
        left.set_xlabel("configuration")
    left.set_ylabel(f"{metric} (mean over {', '.join(over)}, 95% CI)")
    left.set_title(f"{metric} against {config_keys[0] if config_keys else 'configuration'}")
    left.grid(alpha=0.3)

    completed = [r for g in groups for r in g.runs if r.status == "completed" and metric in r.metrics]
    completed.sort(key=lambda r: r.metrics[metric], reverse=mode == "max")
    for run in completed[:top]:
        steps, values = _val_curve(run, metric)
        if steps:
            swept = ", ".join(f"{k}={run.overrides.get(k)}" for k in keys)
            right.plot(steps, values, marker=".", label=f"{run.label}: {swept}"[:70])
    right.set_xlabel("optimizer step")
    right.set_ylabel("val/" + metric.split("/", 1)[-1])
    right.set_title(f"validation curves of the top {min(top, len(completed))} runs")
    right.grid(alpha=0.3)
    if right.lines:
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
