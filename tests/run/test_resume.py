"""Resume under the conditions a cluster user meets: kill -9 of a PEFT or frozen-layers run, a metric
that never improves, a divergence resumed with a lower learning rate, a pickled PreemptedError.

Every run goes through the CLI on the tiny backbone in deterministic mode; a kill is a real SIGKILL
from outside the training process.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.runs import ROOT, quick, read_metrics, train_in_process

TESTS = Path(__file__).resolve().parents[1]  # tests/: the subprocess imports helpers.faults from there


def _exact(backbone, run, *extra):
    """Deterministic, 2 epochs of 4 steps; the learning rate is high enough for every method to move."""
    return quick(
        backbone,
        run,
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "~callbacks.early_stopping",
        "optimizer.lr=1e-3",
        *extra,
    )


def _csv_rows(run) -> list[dict]:
    with open(Path(run) / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _kill_in_epoch_2(backbone, run, tmp_path, *extra) -> None:
    """Start the run in a subprocess, SIGKILL it in epoch 2 (batch 3), after the epoch-1 checkpoint."""
    marker = tmp_path / f"paused-{run.name}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    args = _exact(
        backbone,
        run,
        *extra,
        "+callbacks.fault._target_=helpers.faults.PauseAt",
        f"+callbacks.fault.marker={marker}",
        "+callbacks.fault.epoch=1",
        "+callbacks.fault.batch=2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunelab", "train", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the training subprocess never reached the pause point"
            time.sleep(0.2)
        os.kill(int(marker.read_text()), signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()


METHODS = {
    "full": [],
    "lora": ["peft=lora"],
    "bitfit": ["peft=bitfit"],
    "frozen_layers": ["model.freeze.layers=1"],
    "ia3": ["peft=ia3"],
    "head_only": ["peft=head_only"],
    "layer_decay": ["model.layer_decay=0.8"],
    "gradual_unfreezing": ["callbacks=gradual_unfreezing"],
}
PARTIAL = {"lora", "bitfit", "frozen_layers", "ia3", "head_only"}  # checkpoints that hold only what trains


@pytest.mark.parametrize("method", list(METHODS))
def test_kill_9_then_resume_matches_an_uninterrupted_run_for_every_tuning_method(method, tiny_backbone, tmp_path):
    extra = METHODS[method]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert train_in_process(*_exact(tiny_backbone, straight, *extra)) == 0
    _kill_in_epoch_2(tiny_backbone, killed, tmp_path, *extra)
    last = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and not (killed / "metrics.json").exists()
    assert json.loads((killed / "run.json").read_text())["status"] == "running"  # killed: no chance to say more
    # a partial checkpoint holds only what trains; layer decay and gradual unfreezing train everything
    assert last["tunelab"]["partial"] == (method in PARTIAL)
    assert any("word_embeddings" in k for k in last["state_dict"]) == (method not in PARTIAL)

    assert train_in_process(*_exact(tiny_backbone, killed, *extra, "ckpt_path=last")) == 0
    resumed, reference = read_metrics(killed), read_metrics(straight)
    assert resumed["global_steps"] == reference["global_steps"] == 8
    assert resumed["metrics"] == reference["metrics"]  # bitwise: every float equal
    assert json.loads((killed / "run.json").read_text())["resumed_from"].endswith("last.ckpt")
    # csv/metrics.csv: the rows before the kill kept, the replayed steps once, the same values as uninterrupted
    assert _csv_rows(killed) == _csv_rows(straight)
    steps = [(r["step"], r["train/loss"]) for r in _csv_rows(killed) if r["train/loss"]]
    assert len(steps) == len(set(steps)) == 4


def test_a_preempted_peft_sweep_continues_with_resume_true(tiny_backbone, tmp_path):
    """The sweep path (resume=true picks each job's last.ckpt) goes through the same resume check."""
    sweep = tmp_path / "sweep"
    args = [o for o in _exact(tiny_backbone, tmp_path / "unused") if not o.startswith("hydra.run.dir")]
    # both jobs stop in epoch 2 (a NaN at step 5 stands in for the preemption), after their epoch-1 last.ckpt
    assert (
        train_in_process(
            "-m",
            *args,
            f"hydra.sweep.dir={sweep}",
            "peft=lora,bitfit",
            "+callbacks.fault._target_=helpers.faults.PoisonLossAt",
            "+callbacks.fault.step=5",
        )
        != 0
    )
    for job in ("0", "1"):
        assert not (sweep / job / "metrics.json").exists()
        assert torch.load(sweep / job / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert train_in_process("-m", *args, f"hydra.sweep.dir={sweep}", "peft=lora,bitfit", "resume=true") == 0
    for job in ("0", "1"):
        info = json.loads((sweep / job / "run.json").read_text())
        assert info["status"] == "completed" and info["resumed_from"].endswith("last.ckpt")
        assert read_metrics(sweep / job)["global_steps"] == 8


def test_last_ckpt_holds_the_final_step_when_the_metric_never_improves(tiny_backbone, tmp_path):
    run = tmp_path / "run"
    # lr 1e-12: validation accuracy is the same every epoch, so the best checkpoint is never replaced
    assert (
        train_in_process(
            *quick(tiny_backbone, run, "trainer.max_epochs=3", "~callbacks.early_stopping", "optimizer.lr=1e-12")
        )
        == 0
    )
    summary = read_metrics(run)
    assert summary["global_steps"] == 12
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["global_step"] == 4
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12


def test_last_ckpt_every_n_steps_when_asked(tiny_backbone, tmp_path):
    run = tmp_path / "run"
    marker_args = ["+callbacks.fault._target_=helpers.faults.PoisonLossAt", "+callbacks.fault.step=6"]
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "trainer.max_epochs=2",
                "callbacks.last_checkpoint.every_n_train_steps=1",
                *marker_args,
            )
        )
        != 0
    )
    # the loss turned NaN at step 6 (before its update): the step saves kept step 6's state
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_a_divergence_resumes_from_the_named_checkpoint_with_a_lower_learning_rate(tiny_backbone, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_in_process(*_exact(tiny_backbone, run, "trainer.max_epochs=1", "optimizer.lr=5e-5")) == 0
    capsys.readouterr()
    # the exploding learning rate of the issue: the weights blow up in epoch 2 and the loss turns NaN
    assert (
        train_in_process(*_exact(tiny_backbone, run, "trainer.max_epochs=3", "ckpt_path=last", "optimizer.lr=1e6")) != 0
    )
    captured = capsys.readouterr()
    log = (run / "train.log").read_text()
    assert "Resumed with optimizer.lr=1e+06; the checkpoint was trained with 5e-05" in log
    last = run / "checkpoints" / "last.ckpt"
    assert "The training loss is nan at step" in captured.err and "Traceback" not in captured.err
    assert f"The last good checkpoint is {last}, at step 4" in captured.err
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert not (run / "metrics.json").exists()

    assert (
        train_in_process(*_exact(tiny_backbone, run, "trainer.max_epochs=3", "ckpt_path=last", "optimizer.lr=1e-3"))
        == 0
    )
    log = (run / "train.log").read_text()
    assert "Resumed with optimizer.lr=0.001; the checkpoint was trained with 5e-05" in log
    summary = read_metrics(run)
    assert summary["global_steps"] == 12
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["metrics"].values())
    saved = torch.load(last, weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["initial_lr"] == 1e-3
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def test_a_run_that_diverges_in_its_first_epoch_says_there_is_no_checkpoint(tiny_backbone, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_in_process(*_exact(tiny_backbone, run, "optimizer.lr=1e6")) != 0
    err = capsys.readouterr().err
    assert "The training loss is nan at step" in err and "(epoch 0," in err
    assert "No checkpoint had been written yet: start again with a lower optimizer.lr." in err
    assert not (run / "checkpoints" / "last.ckpt").exists() and not (run / "metrics.json").exists()


def test_preempted_error_survives_pickling_as_joblib_sends_it():
    from tunelab.callbacks import PreemptedError

    error = pickle.loads(pickle.dumps(PreemptedError("SIGUSR1", "/runs/a/checkpoints/last.ckpt")))
    assert isinstance(error, PreemptedError) and error.signal_name == "SIGUSR1"
    assert str(error).startswith("Received SIGUSR1: stopped after saving /runs/a/checkpoints/last.ckpt.")
