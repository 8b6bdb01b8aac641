"""The runs ``tunelab compare`` reads: run folders found under the given folders, each with its status
(completed / failed / pruned / unfinished / not started / fast_dev_run), its command-line overrides (from
Hydra's ``.hydra/overrides.yaml``) and its final metrics (``metrics.json``); local files only."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.errors import TunelabError

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


def latest_sweep() -> str:
    root = Path(os.environ.get("TUNELAB_OUTPUTS", "outputs")) / "multirun"
    sweeps = sorted(root.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise TunelabError(f"No sweep under {root}. Run one with `tunelab train -m ...`.")
    return str(sweeps[-1].parent)
