"""Running tunelab from a test: in this process, or as the real command line in a fresh one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def train_in_process(*overrides: str) -> int:
    """``tunelab train OVERRIDES`` in this process; returns the exit code."""
    from tunelab.cli import main

    try:
        return main(["train", *overrides])
    except SystemExit as exit_:
        return int(exit_.code or 0)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


# Overrides that make a run take seconds: tiny backbone, few rows, one epoch, no progress bar.
def quick(backbone: str, run_dir: Path, *extra: str) -> list[str]:
    return [
        f"model.backbone={backbone}",
        f"hydra.run.dir={run_dir}",
        "trainer.max_epochs=1",
        "data.max_samples={train: 64, validation: 32, test: 32}",
        "data.batch_size=16",
        "data.cache=false",
        "~callbacks.progress_bar",
        "print_config=false",
        "trainer.log_every_n_steps=2",
        *extra,
    ]


def tunelab(*args: str, outputs: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    """The real command line in a fresh process (DDP re-launches rank 1 from it)."""
    env = {
        **os.environ,
        "TUNELAB_OUTPUTS": str(outputs),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "tunelab", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def tiny_run(backbone: str) -> list[str]:
    return [
        f"model.backbone={backbone}",
        "trainer.max_epochs=1",
        "data.max_samples={train: 32, validation: 16, test: 16}",
        "data.batch_size=8",
        "data.cache=false",
        "~callbacks.progress_bar",
        "print_config=false",
    ]
