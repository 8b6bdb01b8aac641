"""``tunelab compare DIR [DIR ...]``: one table for a sweep's runs, from local files only.

For each run (a job folder of a multirun, or any run folder): its overrides, its status
(completed / failed / pruned / unfinished / not started) and its final metrics. Runs that differ
only by seed (or by the keys given with --over, e.g. data.fold) are aggregated (mean, std, median, n),
the best configuration is marked, and these files are written next to the sweep (or to --out):

    compare/runs.csv        one row per run: status, overrides, every final metric
    compare/summary.csv     one row per configuration: mean / std / median / n over seeds (or --over), the
                            95% confidence interval of the mean and a Holm-corrected p-value against the best
    compare/compare.md      both tables in Markdown
    compare/compare.png     the metric against the first swept key (one line per value of the
                            others; error bars: 95% CIs) and the validation curves of the top runs
    compare/best.overrides  the best run's overrides, one per line
    compare/rerun_best.sh   `tunelab train <those overrides>`: reruns the best configuration

Whether the best is significantly better than the runner-up (seeds: paired t-test on shared seeds,
Welch's otherwise; test rows: paired bootstrap and McNemar on test_predictions.jsonl) is one sentence
in compare.md and on the console (tunelab/sweeps/stats.py). --rerun-top N --seeds K reruns the N best
configurations with K more seeds into the same sweep folder (tunelab/sweeps/rerun.py).
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
from tunelab.run import test_predictions
from tunelab.sweeps import stats
from tunelab.sweeps.report import markdown_table, plot, tables, text_table

# overrides that say how a sweep ran, not what a run is
IGNORED_PREFIXES = (
    "hydra.",
    "hydra/",
    "resume=",
    "+resume=",
    "print_config=",
    "~callbacks.progress_bar",
    "+callbacks.optuna.",
)  # the Optuna sweeper's bookkeeping (the job number is the trial's)


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
        from tunelab.run.record import is_fast_dev_run

        if is_fast_dev_run(run_dir):  # one batch per split: not a result to rank
            return "fast_dev_run", "a debug=fast_dev_run check (one batch per split), not a result"
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
            raise TunelabError(
                f"'{given}' is not a folder. Give a sweep folder (outputs/multirun/<time>) "
                "or run folders (outputs/runs/<time>)."
            )
        folders = (
            [root]
            if _is_run(root)
            else sorted(
                (p for p in root.iterdir() if p.is_dir() and _is_run(p)),
                key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name),
            )
        )
        if not folders:
            raise TunelabError(
                f"No runs in '{given}': none of its folders has run.json or .hydra/. "
                "Is it the folder a sweep printed (outputs/multirun/<time>)?"
            )
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
    pairs: list[tuple] = field(default_factory=list)  # per value: the run's --over values (seed): pairs runs

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

    @property
    def ci95(self) -> tuple[float, float]:
        return stats.confidence_interval(self.values)

    def by_pair(self) -> dict:
        """{seed (the --over values): metric}; runs that share one (no seed override) cannot be paired."""
        if len(set(self.pairs)) < len(self.pairs):
            return {("run", i): v for i, v in enumerate(self.values)}
        return dict(zip(self.pairs, self.values))


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
            group.pairs.append(tuple(run.overrides.get(k, "") for k in over))
    return list(groups.values())


def best_group(groups: list[Group], mode: str) -> Group | None:
    scored = [g for g in groups if g.values]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda g: g.mean)


def significance(groups: list[Group], best: Group | None, mode: str) -> tuple[dict, Group | None]:
    """({id(group): Comparison against the best, Holm-corrected over all}, the runner-up)."""
    ranked = sorted((g for g in groups if g.values and g is not best), key=lambda g: g.mean, reverse=mode == "max")
    if best is None or not ranked:
        return {}, None
    results = stats.compare_to_best(best.by_pair(), [g.by_pair() for g in ranked])
    return {id(g): r for g, r in zip(ranked, results)}, ranked[0]


def _config_label(group: Group, keys: list[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, group.key)) or "the configuration"


def compare(
    paths: list[str],
    metric: str | None = None,
    mode: str | None = None,
    out: str | None = None,
    top: int = 3,
    over: tuple[str, ...] = ("seed",),
) -> dict:
    """Collect, aggregate, print and write; returns what was found (for tests and scripts)."""
    runs = collect(paths)
    default, default_mode = default_metric(runs)
    metric, mode = metric or default, mode or default_mode
    if any(r.status == "completed" for r in runs) and not any(metric in r.metrics for r in runs):
        available = sorted({m for r in runs for m in r.metrics})
        raise TunelabError(
            f"No run has the metric '{metric}'. Available: {', '.join(available)}. Choose one with --metric."
        )
    keys = swept_keys(runs)
    groups = aggregate(runs, keys, metric, over)
    best = best_group(groups, mode)
    tests, runner = significance(groups, best, mode)
    run_header, run_rows, summary_header, summary_rows = tables(runs, groups, keys, metric, best, over, tests)
    config_keys = [k for k in keys if k not in over]
    findings = []
    if runner is not None:
        findings = [
            stats.verdict(_config_label(best, config_keys), _config_label(runner, config_keys), tests[id(runner)]),
            test_predictions.evidence(best.runs, runner.runs, over),
        ]

    target = Path(out) if out else (Path(paths[0]) / "compare")
    target.mkdir(parents=True, exist_ok=True)
    for name, header, rows in (("runs.csv", run_header, run_rows), ("summary.csv", summary_header, summary_rows)):
        with open(target / name, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    constant = {k: v for k, v in (runs[0].overrides.items() if runs else []) if k not in keys}
    heading = f"{len(runs)} runs in {', '.join(paths)}; metric {metric} ({mode}); * = best"
    common = " ".join(f"{k}={v}" for k, v in constant.items()) or "(none)"
    (target / "compare.md").write_text(
        f"# {heading}\n\nCommon overrides: `{common}`\n\n## Runs\n\n{markdown_table(run_header, run_rows)}\n\n"
        f"## Over {', '.join(over)}\n\n{markdown_table(summary_header, summary_rows)}\n"
        + "".join(f"\n{line}\n" for line in findings)
    )
    plot(target / "compare.png", groups, keys, metric, mode, top, over)

    result = {
        "runs": runs,
        "groups": groups,
        "best": best,
        "metric": metric,
        "mode": mode,
        "out": target,
        "runner_up": runner,
        "tests": tests,
        "findings": findings,
    }
    print(f"{heading}\ncommon overrides: {common}\n\n{text_table(run_header, run_rows)}\n")
    if any(g.n > 1 for g in groups):
        print(text_table(summary_header, summary_rows) + "\n")
    for run in runs:
        if run.status != "completed":
            print(f"  {run.label}: {run.status}{': ' + run.error[:200] if run.error else ''}")
    if best is not None:
        winner = max(best.runs, key=lambda r: r.metrics.get(metric, -math.inf) * (1 if mode == "max" else -1))
        overrides = [f"{k}={v}" for k, v in winner.overrides.items()]
        (target / "best.overrides").write_text("\n".join(overrides) + "\n")
        script = target / "rerun_best.sh"
        script.write_text(
            "#!/usr/bin/env bash\n# rerun the best configuration of the sweep: "
            f"{metric} {best.mean:.4f} (mean of {best.n})\n"
            f'exec tunelab train {" ".join(shlex.quote(o) for o in overrides)} "$@"\n'
        )
        script.chmod(0o755)
        result["best_overrides"] = overrides
        print(
            f"best: {', '.join(f'{k}={v}' for k, v in zip([k for k in keys if k not in over], best.key))} "
            f"{metric} {best.mean:.4f} (n={best.n}); rerun it: {script}"
        )
    for line in findings:
        print(line)
    print(f"wrote {target}/runs.csv, summary.csv, compare.md, compare.png")
    return result


def _latest_sweep() -> str:
    root = Path(os.environ.get("TUNELAB_OUTPUTS", "outputs")) / "multirun"
    sweeps = sorted(root.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise TunelabError(f"No sweep under {root}. Run one with `tunelab train -m ...`.")
    return str(sweeps[-1].parent)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tunelab compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", help="sweep folders (outputs/multirun/<time>), run folders, or 'latest'")
    parser.add_argument("--metric", help="metric to rank by (default: the test twin of the followed metric)")
    parser.add_argument("--mode", choices=["max", "min"], help="higher or lower is better (default: the run's)")
    parser.add_argument("--out", help="where to write the tables and the plot (default: <first path>/compare)")
    parser.add_argument("--top", type=int, default=3, help="how many runs' learning curves to draw")
    parser.add_argument(
        "--over",
        default="seed",
        help="comma-separated keys to aggregate over (default: seed; cross-validation: data.fold)",
    )
    parser.add_argument(
        "--rerun-top",
        type=int,
        metavar="N",
        help="rerun the N best configurations with --seeds more seeds into the same sweep folder, then compare again",
    )
    parser.add_argument("--seeds", type=int, default=3, metavar="K", help="new seeds per rerun configuration (3)")
    args = parser.parse_args(argv)
    paths = [_latest_sweep() if p == "latest" else p for p in args.paths]
    over = tuple(k.strip() for k in args.over.split(","))
    result = compare(paths, args.metric, args.mode, args.out, args.top, over)
    if args.rerun_top:
        from tunelab.sweeps.rerun import rerun_top

        if len(paths) != 1:
            raise TunelabError("--rerun-top reruns into one sweep folder: give exactly one.")
        rerun_top(paths[0], result, args.rerun_top, args.seeds)
        print("\nafter the reruns:")
        compare(paths, args.metric, args.mode, args.out, args.top, over)
    return 0
