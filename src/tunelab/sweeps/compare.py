"""``tunelab compare DIR [DIR ...]``: one table for a sweep's runs, from local files only.

For each run (a job folder of a multirun, or any run folder): its overrides, its status
(completed / failed / pruned / unfinished / not started) and its final metrics. Runs that differ
only by seed (or by the keys given with --over, e.g. data.fold) are aggregated (mean, std, median, n),
the best configuration is marked, and these files are written next to the sweep (or to --out):

    compare/runs.csv        one row per run: status, overrides, every final metric
    compare/summary.csv     one row per configuration: mean / std / median / n over seeds (or --over)
    compare/compare.md      both tables in Markdown
    compare/compare.png     the metric against the first swept key (one line per value of the
                            others) and the validation curves of the top runs
    compare/best.overrides  the best run's overrides, one per line
    compare/rerun_best.sh   `tunelab train <those overrides>`: reruns the best configuration
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.errors import TunelabError

# overrides that say how a sweep ran, not what a run is
IGNORED_PREFIXES = ("hydra.", "hydra/", "resume=", "+resume=", "print_config=", "~callbacks.progress_bar",
                    "+callbacks.optuna.")  # the Optuna sweeper's bookkeeping (the job number is the trial's)


@dataclass
class Run:
    path: Path
    label: str
    status: str
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


def _overrides(run_dir: Path) -> dict[str, str]:
    """``key -> value`` from Hydra's record of the job's command-line overrides."""
    record = run_dir / ".hydra" / "overrides.yaml"
    if not record.exists():
        return {}
    from omegaconf import OmegaConf

    items = [str(o) for o in OmegaConf.load(record) if not str(o).startswith(IGNORED_PREFIXES)]
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in items)


def _status(run_dir: Path) -> tuple[str, str]:
    if (run_dir / "metrics.json").exists():
        return "completed", ""
    if not (run_dir / "run.json").exists():
        return "not started", ""
    info = json.loads((run_dir / "run.json").read_text())
    error = info.get("error", "")
    if info.get("status") == "failed":
        return ("pruned" if error.startswith("TrialPruned") else "failed"), error
    return "unfinished", "no metrics.json: killed or still running (rerun the sweep with resume=true)"


def _is_run(path: Path) -> bool:
    return (path / "run.json").exists() or (path / ".hydra").is_dir() or (path / "metrics.json").exists()


def collect(paths: list[str]) -> list[Run]:
    """The runs in the given folders: each a run folder, or a sweep folder holding run folders."""
    runs: list[Run] = []
    for given in paths:
        root = Path(given).expanduser()
        if not root.is_dir():
            raise TunelabError(f"'{given}' is not a folder. Give a sweep folder (outputs/multirun/<time>) "
                               "or run folders (outputs/runs/<time>).")
        folders = [root] if _is_run(root) else sorted(
            (p for p in root.iterdir() if p.is_dir() and _is_run(p)),
            key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
        if not folders:
            raise TunelabError(f"No runs in '{given}': none of its folders has run.json or .hydra/. "
                               "Is it the folder a sweep printed (outputs/multirun/<time>)?")
        for folder in folders:
            status, error = _status(folder)
            metrics = json.loads((folder / "metrics.json").read_text())["metrics"] if status == "completed" else {}
            label = folder.name if len(paths) == 1 and folder != root else f"{folder.parent.name}/{folder.name}"
            runs.append(Run(folder, label, status, _overrides(folder), metrics, error))
    return runs


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value differs between runs, in first-seen order."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys]
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def default_metric(runs: list[Run]) -> tuple[str, str]:
    """The test twin of the metric the runs followed (val/accuracy -> test/accuracy), and its mode."""
    for run in runs:
        if run.status == "completed":
            monitor = json.loads((run.path / "metrics.json").read_text()).get("monitor", {})
            name, mode = monitor.get("metric", "val/loss"), monitor.get("mode", "min")
            test = "test/" + name.split("/", 1)[-1]
            return (test if test in run.metrics else name), mode
    return "test/loss", "min"


@dataclass
class Group:
    key: tuple
    runs: list[Run]
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0 if self.values else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan


def aggregate(runs: list[Run], keys: list[str], metric: str, over: tuple[str, ...] = ("seed",)) -> list[Group]:
    """Runs with the same swept values except the keys in ``over`` (the seed; the fold of a
    cross-validation) form one configuration."""
    config_keys = [k for k in keys if k not in over]
    groups: dict[tuple, Group] = {}
    for run in runs:
        key = tuple(run.overrides.get(k, "") for k in config_keys)
        group = groups.setdefault(key, Group(key, [], []))
        group.runs.append(run)
        if run.status == "completed" and metric in run.metrics:
            group.values.append(run.metrics[metric])
    return list(groups.values())


def best_group(groups: list[Group], mode: str) -> Group | None:
    scored = [g for g in groups if g.values]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda g: g.mean)


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.4f}" if isinstance(value, float) else str(value))


def tables(runs: list[Run], groups: list[Group], keys: list[str], metric: str, best: Group | None,
           over: tuple[str, ...] = ("seed",)):
    """(runs header, runs rows, summary header, summary rows): plain lists, for print, CSV and Markdown."""
    metric_names = sorted({m for run in runs for m in run.metrics if m.startswith("test/")}) or \
        sorted({m for run in runs for m in run.metrics})
    best_runs = {id(r) for r in best.runs} if best else set()
    run_header = ["best", "run", "status", *keys, *metric_names]
    run_rows = [["*" if id(r) in best_runs and r.status == "completed" else "", r.label, r.status,
                 *[r.overrides.get(k, "") for k in keys], *[_fmt(r.metrics.get(m)) for m in metric_names]]
                for r in runs]
    config_keys = [k for k in keys if k not in over]
    summary_header = ["best", *config_keys, f"{metric} mean", "std", "median", "n", "failed/unfinished"]
    summary_rows = [["*" if g is best else "", *g.key, _fmt(g.mean), _fmt(g.std), _fmt(g.median), g.n,
                     sum(r.status != "completed" for r in g.runs)] for g in groups]
    return run_header, run_rows, summary_header, summary_rows


def _text_table(header: list, rows: list[list]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _markdown_table(header: list, rows: list[list]) -> str:
    def line(row):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _val_curve(run: Run, metric: str) -> tuple[list[float], list[float]]:
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


def plot(path: Path, groups: list[Group], keys: list[str], metric: str, mode: str, top: int,
         over: tuple[str, ...] = ("seed",)) -> None:
    """Left: the metric against the first swept key, one line per combination of the other keys
    (mean over seeds, error bars = std). Right: validation curves of the top runs."""
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
                lines.setdefault(tuple(g.key[1:]), []).append((x, g.mean, g.std))
        for other, points in sorted(lines.items()):
            points.sort()
            label = ", ".join(f"{k}={v}" for k, v in zip(others, other)) or metric
            left.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                          marker="o", capsize=3, label=label)
        xs = [p[0] for pts in lines.values() for p in pts]
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
            left.set_xscale("log")
        left.set_xlabel(x_key)
        if left.lines:
            left.legend(fontsize=8)
    else:
        left.bar(range(len(groups)), [g.mean for g in groups])
        left.set_xlabel("configuration")
    left.set_ylabel(f"{metric} (mean over {', '.join(over)})")
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


def compare(paths: list[str], metric: str | None = None, mode: str | None = None, out: str | None = None,
            top: int = 3, over: tuple[str, ...] = ("seed",)) -> dict:
    """Collect, aggregate, print and write; returns what was found (for tests and scripts)."""
    runs = collect(paths)
    default, default_mode = default_metric(runs)
    metric, mode = metric or default, mode or default_mode
    if any(r.status == "completed" for r in runs) and not any(metric in r.metrics for r in runs):
        available = sorted({m for r in runs for m in r.metrics})
        raise TunelabError(f"No run has the metric '{metric}'. Available: {', '.join(available)}. "
                           "Choose one with --metric.")
    keys = swept_keys(runs)
    groups = aggregate(runs, keys, metric, over)
    best = best_group(groups, mode)
    run_header, run_rows, summary_header, summary_rows = tables(runs, groups, keys, metric, best, over)

    target = Path(out) if out else (Path(paths[0]) / "compare")
    target.mkdir(parents=True, exist_ok=True)
    for name, header, rows in (("runs.csv", run_header, run_rows), ("summary.csv", summary_header, summary_rows)):
        with open(target / name, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    constant = {k: v for k, v in (runs[0].overrides.items() if runs else []) if k not in keys}
    heading = f"{len(runs)} runs in {', '.join(paths)}; metric {metric} ({mode}); * = best"
    common = " ".join(f"{k}={v}" for k, v in constant.items()) or "(none)"
    (target / "compare.md").write_text(
        f"# {heading}\n\nCommon overrides: `{common}`\n\n## Runs\n\n{_markdown_table(run_header, run_rows)}\n\n"
        f"## Over {', '.join(over)}\n\n{_markdown_table(summary_header, summary_rows)}\n")
    plot(target / "compare.png", groups, keys, metric, mode, top, over)

    result = {"runs": runs, "groups": groups, "best": best, "metric": metric, "mode": mode, "out": target}
    print(f"{heading}\ncommon overrides: {common}\n\n{_text_table(run_header, run_rows)}\n")
    if any(g.n > 1 for g in groups):
        print(_text_table(summary_header, summary_rows) + "\n")
    for run in runs:
        if run.status != "completed":
            print(f"  {run.label}: {run.status}{': ' + run.error[:200] if run.error else ''}")
    if best is not None:
        winner = max(best.runs, key=lambda r: r.metrics.get(metric, -math.inf) * (1 if mode == "max" else -1))
        overrides = [f"{k}={v}" for k, v in winner.overrides.items()]
        (target / "best.overrides").write_text("\n".join(overrides) + "\n")
        script = target / "rerun_best.sh"
        script.write_text("#!/usr/bin/env bash\n# rerun the best configuration of the sweep: "
                          f"{metric} {best.mean:.4f} (mean of {best.n})\n"
                          f"exec tunelab train {' '.join(shlex.quote(o) for o in overrides)} \"$@\"\n")
        script.chmod(0o755)
        result["best_overrides"] = overrides
        print(f"best: {', '.join(f'{k}={v}' for k, v in zip([k for k in keys if k not in over], best.key))} "
              f"{metric} {best.mean:.4f} (n={best.n}); rerun it: {script}")
    print(f"wrote {target}/runs.csv, summary.csv, compare.md, compare.png")
    return result


def _latest_sweep() -> str:
    root = Path(os.environ.get("TUNELAB_OUTPUTS", "outputs")) / "multirun"
    sweeps = sorted(root.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise TunelabError(f"No sweep under {root}. Run one with `tunelab train -m ...`.")
    return str(sweeps[-1].parent)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tunelab compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="sweep folders (outputs/multirun/<time>), run folders, or 'latest'")
    parser.add_argument("--metric", help="metric to rank by (default: the test twin of the followed metric)")
    parser.add_argument("--mode", choices=["max", "min"], help="higher or lower is better (default: the run's)")
    parser.add_argument("--out", help="where to write the tables and the plot (default: <first path>/compare)")
    parser.add_argument("--top", type=int, default=3, help="how many runs' learning curves to draw")
    parser.add_argument("--over", default="seed",
                        help="comma-separated keys to aggregate over (default: seed; cross-validation: data.fold)")
    args = parser.parse_args(argv)
    paths = [_latest_sweep() if p == "latest" else p for p in args.paths]
    compare(paths, args.metric, args.mode, args.out, args.top, tuple(k.strip() for k in args.over.split(",")))
    return 0
