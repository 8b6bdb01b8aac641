"""What ``tunelab compare`` writes and prints: the runs table (one row per run) and the summary table (one
row per configuration), as pandas DataFrames; CSV (``DataFrame.to_csv``), Markdown, and a rich console
table. Numbers are shown with 4 decimals, a missing value as an empty cell."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from tunelab.sweeps import stats

DECIMALS = "%.4f"


def tables(runs: list, groups: list, keys: list[str], metric: str, best, over=("seed",), tests=None):
    """(runs table, summary table): every run's status, swept values and test metrics; every configuration's
    mean / std / median / n over ``over``, its failed runs, the 95% CI and the Holm-corrected p against the best."""
    metric_names = sorted({m for run in runs for m in run.metrics if m.startswith("test/")}) or sorted(
        {m for run in runs for m in run.metrics}
    )
    best_runs = {id(r) for r in best.runs} if best else set()
    runs_table = pd.DataFrame(
        [
            {
                "best": "*" if id(r) in best_runs and r.status == "completed" else "",
                "run": r.label,
                "status": r.status,
                **{k: r.overrides.get(k, "") for k in keys},
                **{m: r.metrics.get(m, math.nan) for m in metric_names},
            }
            for r in runs
        ],
        columns=["best", "run", "status", *keys, *metric_names],
    )
    config_keys = [k for k in keys if k not in over]
    none, tests = stats.Comparison("", 0, math.nan), tests or {}
    summary = pd.DataFrame(
        [
            {
                "best": "*" if g is best else "",
                **dict(zip(config_keys, g.key)),
                f"{metric} mean": g.mean,
                "std": g.std,
                "median": g.median,
                "n": g.n,
                "failed/unfinished": sum(r.status != "completed" for r in g.runs),
                "ci95_low": g.ci95[0],
                "ci95_high": g.ci95[1],
                "p_vs_best": tests.get(id(g), none).p_holm,
                "test": tests.get(id(g), none).test,
            }
            for g in groups
        ],
    )
    return runs_table, summary


def _cells(table: pd.DataFrame) -> list[list[str]]:
    """The table's values as shown: floats with 4 decimals, nan as ''."""

    def shown(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else DECIMALS % value
        return str(value)

    return [[shown(v) for v in row] for row in table.itertuples(index=False)]


def write_csv(table: pd.DataFrame, path: Path) -> None:
    table.to_csv(path, index=False, float_format=DECIMALS, na_rep="")


def markdown_table(table: pd.DataFrame) -> str:
    def line(row):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([line(table.columns), line(["---"] * len(table.columns)), *map(line, _cells(table))])


def text_table(table: pd.DataFrame) -> str:
    """The table for the console (rich), wide enough that no cell wraps."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    shown = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in table.columns:
        shown.add_column(str(column), no_wrap=True)
    for row in _cells(table):
        shown.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=10_000, color_system=None).print(shown)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
