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
import math
import shlex
from pathlib import Path

from tunelab.errors import TunelabError
from tunelab.run import test_predictions
from tunelab.sweeps import stats
from tunelab.sweeps.configs import Group, aggregate, best_group, config_label, significance  # noqa: F401
from tunelab.sweeps.plot import plot
from tunelab.sweeps.report import markdown_table, tables, text_table, write_csv
from tunelab.sweeps.runs import Run, collect, default_metric, latest_sweep, swept_keys  # noqa: F401


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
    runs_table, summary = tables(runs, groups, keys, metric, best, over, tests)
    config_keys = [k for k in keys if k not in over]
    findings = []
    if runner is not None:
        findings = [
            stats.verdict(config_label(best, config_keys), config_label(runner, config_keys), tests[id(runner)]),
            test_predictions.evidence(best.runs, runner.runs, over),
        ]

    target = Path(out) if out else (Path(paths[0]) / "compare")
    target.mkdir(parents=True, exist_ok=True)
    write_csv(runs_table, target / "runs.csv")
    write_csv(summary, target / "summary.csv")
    constant = {k: v for k, v in (runs[0].overrides.items() if runs else []) if k not in keys}
    heading = f"{len(runs)} runs in {', '.join(paths)}; metric {metric} ({mode}); * = best"
    common = " ".join(f"{k}={v}" for k, v in constant.items()) or "(none)"
    (target / "compare.md").write_text(
        f"# {heading}\n\nCommon overrides: `{common}`\n\n## Runs\n\n{markdown_table(runs_table)}\n\n"
        f"## Over {', '.join(over)}\n\n{markdown_table(summary)}\n" + "".join(f"\n{line}\n" for line in findings)
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
    print(f"{heading}\ncommon overrides: {common}\n\n{text_table(runs_table)}\n")
    if any(g.n > 1 for g in groups):
        print(text_table(summary) + "\n")
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
    paths = [latest_sweep() if p == "latest" else p for p in args.paths]
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
