"""Faults a cluster job meets: kill -9, a kill during a save, SIGTERM/SIGUSR1 preemption, NaN loss, full disks.

Every fault is injected for real (a SIGKILL from outside, a signal delivered to the process), on the
tiny backbone, in deterministic mode.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Imported here, not first inside a capsys test: Lightning's log handler keeps the stderr it finds
# at import time, and a closed capsys stream would print logging tracebacks in later tests.
import lightning  # noqa: F401
import pytest
import torch

from helpers.runs import ROOT, quick, read_metrics, train_in_process


def _exact(backbone, run, *extra):
    """A deterministic 2-epoch run of 4 steps per epoch; checkpoints at epoch ends (the default)."""
    return quick(
        backbone, run, "trainer.max_epochs=2", "trainer.deterministic=true", "~callbacks.early_stopping", *extra
    )


def _status(run) -> dict:
    return json.loads((Path(run) / "run.json").read_text())


# kill -9 then resume, for every tuning method: tests/run/test_resume.py


def test_a_kill_during_a_save_never_leaves_a_corrupt_checkpoint(tmp_path):
    """SIGKILL a process that saves a 40 MB checkpoint in a loop, at several moments; the file always loads."""
    target = tmp_path / "last.ckpt"
    script = (
        "import sys, torch\n"
        "from tunelab.run.atomic import atomic_torch_save\n"
        "state = {'w': torch.arange(10_000_000, dtype=torch.float32)}\n"
        "for i in range(10_000):\n"
        "    state['step'] = i\n"
        "    atomic_torch_save(state, sys.argv[1])\n"
        "    print(i, flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    steps, confirmed = [], []
    for delay in (0.0, 0.07, 0.15):
        proc = subprocess.Popen([sys.executable, "-c", script, str(target)], env=env, stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # one save is complete; the next one is under way
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        state = torch.load(target, weights_only=True)
        assert state["w"].shape == (10_000_000,) and float(state["w"][-1]) == 9_999_999
        steps.append(state["step"])
        confirmed.append(int([0, *proc.stdout.read().split()][-1]))  # the last save the process said was done
    # the file holds the last confirmed save, or the next one when the kill came between its rename and its
    # print: never an older one (a finished save is not lost) and never one still being written
    assert all(step in (last, last + 1) for step, last in zip(steps, confirmed)), (steps, confirmed)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".ckpt"] == ["last.ckpt"]  # unfinished ones are .tmp-*


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from tunelab.run import atomic, checkpoint_io

    path = tmp_path / "last.ckpt"
    atomic.atomic_torch_save({"step": 1}, path)

    def torn_write(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.torch, "save", torn_write)
    with pytest.raises(OSError):
        checkpoint_io.AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize(("signum", "epoch"), [("SIGTERM", 0), ("SIGUSR1", 0), ("SIGUSR1", 1)])
def test_preemption_signal_saves_then_stops_and_the_run_resumes(signum, epoch, tiny_backbone, tmp_path, capsys):
    run, straight = tmp_path / "run", tmp_path / "straight"
    assert train_in_process(*_exact(tiny_backbone, straight)) == 0
    code = train_in_process(
        *_exact(
            tiny_backbone,
            run,
            "+callbacks.fault._target_=helpers.faults.SignalAt",
            f"+callbacks.fault.signum={signum}",
            f"+callbacks.fault.epoch={epoch}",
            "+callbacks.fault.batch=1",
        )
    )
    err = capsys.readouterr().err
    assert code != 0
    assert f"Received {signum}: stopped after saving {run / 'checkpoints' / 'last.ckpt'}" in err
    assert "ckpt_path=last" in err and "Traceback" not in err
    saved_step = 4 * epoch + 2  # mid-epoch: 2 of the epoch's 4 batches trained
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == saved_step
    assert _status(run)["status"] == "interrupted" and not (run / "metrics.json").exists()

    # the resumed run passes over the batches it trained (in that epoch's order), so it ends as the
    # uninterrupted run does, every float equal
    assert train_in_process(*_exact(tiny_backbone, run, "ckpt_path=last")) == 0
    assert read_metrics(run)["global_steps"] == 8
    assert read_metrics(run)["metrics"] == read_metrics(straight)["metrics"]
    # metrics.csv: the uninterrupted run's rows, each once. SIGUSR1 saves at a batch end, before Lightning logs
    # that step's metrics, so the training row of that step is missing; SIGTERM stops after the logging
    rows = [
        (run / "csv" / "metrics.csv").read_text().splitlines(),
        (straight / "csv" / "metrics.csv").read_text().splitlines(),
    ]
    lost = [r for r in rows[1] if r not in rows[0]]
    assert [r for r in rows[1] if r not in lost] == rows[0]
    assert len(lost) == (1 if signum == "SIGUSR1" else 0)
    assert all(r.startswith(f"{epoch},,,{saved_step - 1},") for r in lost)


def test_sigusr1_under_slurm_saves_an_hpc_checkpoint_and_requeues(tiny_backbone, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key, value in {
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "tunelab",
        "SLURM_NODELIST": "node1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }.items():
        monkeypatch.setenv(key, value)
    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "+callbacks.fault._target_=helpers.faults.SignalAt",
            "+callbacks.fault.signum=SIGUSR1",
            "+callbacks.fault.epoch=0",
            "+callbacks.fault.batch=1",
        )
    )
    assert code == 0  # SLURM kills the job after its grace time; until then it keeps training
    assert calls.read_text().split() == ["requeue", "4242"]
    assert torch.load(run / "hpc_ckpt_1.ckpt", weights_only=True)["global_step"] == 1

    # the requeued job: same command, same run directory; Lightning resumes from the HPC checkpoint
    assert train_in_process(*quick(tiny_backbone, run)) == 0
    assert _status(run)["resumed_from"] == str(run / "hpc_ckpt_1.ckpt")


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_backbone, tmp_path, capsys):
    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "trainer.max_epochs=2",
            "+callbacks.fault._target_=helpers.faults.PoisonLossAt",
            "+callbacks.fault.step=6",
        )
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "The training loss is nan at step 6 (epoch 1, batch 2)" in err
    assert f"The last good checkpoint is {run / 'checkpoints' / 'last.ckpt'}" in err and "Traceback" not in err
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert _status(run)["status"] == "failed" and not (run / "metrics.json").exists()


def test_a_sweep_records_the_nan_job_as_failed_and_finishes_the_others(tiny_backbone, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    args = [o for o in quick(tiny_backbone, tmp_path / "unused") if not o.startswith("hydra.run.dir")]
    code = train_in_process(
        "-m",
        *args,
        f"hydra.sweep.dir={sweep}",
        "+callbacks.fault._target_=helpers.faults.PoisonLossAt",
        "+callbacks.fault.step=1,1000,2",
    )
    err = capsys.readouterr().err
    assert code != 0 and "The training loss is nan at step 1" in err and "Traceback" not in err
    assert [_status(sweep / str(i))["status"] for i in range(3)] == ["failed", "completed", "failed"]
    assert (sweep / "1" / "metrics.json").exists()
    assert not (sweep / "0" / "metrics.json").exists() and not (sweep / "2" / "metrics.json").exists()


def test_an_unwritable_output_directory_is_refused_before_training(tiny_backbone, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = train_in_process(*quick(tiny_backbone, blocker / "run"))
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert f"Cannot write to the output directory '{blocker / 'run'}': {blocker} is not a folder" in err
    assert "hydra.run.dir=DIR" in err


def test_a_full_disk_is_refused_before_training(tiny_backbone, tmp_path, capsys, monkeypatch):
    from collections import namedtuple

    from tunelab.run import preflight

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage(10 << 30, (10 << 30) - (1 << 20), 1 << 20))
    run = tmp_path / "run"
    code = train_in_process(*quick(tiny_backbone, run))
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert f"Not enough disk space for this run in '{run}': 1 MiB free" in err
    assert not (run / "checkpoints").exists() and _status(run)["status"] == "failed"
