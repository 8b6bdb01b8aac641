"""compare.png: the metric against the first swept key (one line per value of the other keys; error bars:
the 95% confidence intervals of the means) and the validation curves of the top runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path


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
