"""Submitting and watching tunelab sweeps on the local SLURM cluster (tests/sweeps/test_slurm.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from helpers.runs import ROOT

TESTS = ROOT / "tests"  # helpers/ (the probes the jobs load) is under tests/


def job_env(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "TUNELAB_OUTPUTS": str(tmp_path / "outputs"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }


def sweep_command(sweep: Path, job_name: str, backbone: str, *extra: str) -> list[str]:
    """A tiny sweep on the cluster: 64 training rows, batch 16 (4 steps an epoch), 2 epochs, deterministic."""
    return [
        sys.executable,
        "-m",
        "tunelab",
        "train",
        "-m",
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={sweep}",
        f"hydra.launcher.name={job_name}",
        "hydra.launcher.timeout_min=20",
        f"model.backbone={backbone}",
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "~callbacks.early_stopping",
        "~callbacks.progress_bar",
        "data.max_samples={train: 64, validation: 32, test: 32}",
        "data.batch_size=16",
        "data.cache=false",
        "print_config=false",
        *extra,
    ]


def submit(tmp_path, sweep, job_name, backbone, *extra, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_command(sweep, job_name, backbone, *extra),
        env=job_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(tmp_path, sweep, job_name, backbone, *extra) -> subprocess.Popen:
    log = open(tmp_path / "sweep.log", "w")
    return subprocess.Popen(
        sweep_command(sweep, job_name, backbone, *extra),
        env=job_env(tmp_path),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(condition, seconds: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process is None or process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.5)


def job_logs(sweep: Path) -> str:
    """What the jobs printed (stdout and stderr of every task and every run of it)."""
    return "\n".join(p.read_text() for p in sorted((sweep / ".submitit").glob("*/*_log.*")))


def array_tasks(sweep: Path) -> list[str]:
    """The SLURM array tasks of a sweep, from submitit's job folders (<array>_<index>)."""
    return sorted(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())
