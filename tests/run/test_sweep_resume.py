"""Sweep resume: kill a sweep in the middle, rerun the same command with resume=true."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers.runs import ROOT, TESTS, tiny_run, train_in_process, tunelab


def test_killed_sweep_resumes_without_rerunning_finished_jobs(tiny_backbone, tmp_path):
    outputs = tmp_path / "outputs"
    sweep = [
        "train",
        "-m",
        "seed=1,2,3",
        *tiny_run(tiny_backbone),
        "trainer.max_epochs=3",
        "+callbacks.slow._target_=helpers.sweep_probes.SlowSteps",
        "+callbacks.slow.seconds=0.4",
    ]
    env = {
        **os.environ,
        "TUNELAB_OUTPUTS": str(outputs),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tunelab", *sweep],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # wait until job 0 finished and job 1 saved a checkpoint, then kill the whole sweep (a preemption)
        deadline = time.monotonic() + 300
        while not list(outputs.glob("multirun/*/1/checkpoints/last.ckpt")):
            assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    (sweep_dir,) = outputs.glob("multirun/*")
    assert (sweep_dir / "0" / "metrics.json").exists() and not (sweep_dir / "1" / "metrics.json").exists()
    first = (sweep_dir / "0" / "metrics.json").read_text()
    first_mtime = (sweep_dir / "0" / "metrics.json").stat().st_mtime_ns

    result = tunelab(*sweep, "resume=true", outputs=outputs)
    assert result.returncode == 0, result.stderr[-3000:]

    assert list(outputs.glob("multirun/*")) == [sweep_dir], "resume continues the same sweep folder"
    assert f"{sweep_dir / '0'} finished earlier; skipped." in result.stdout
    # the finished job was not rerun: same file, same bytes
    assert (sweep_dir / "0" / "metrics.json").stat().st_mtime_ns == first_mtime
    assert (sweep_dir / "0" / "metrics.json").read_text() == first
    # the interrupted job continued from its last checkpoint and finished all 3 epochs (4 steps each)
    assert "Restored all states from the checkpoint" in (sweep_dir / "1" / "train.log").read_text()
    for job in ("1", "2"):
        summary = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert summary["global_steps"] == 12 and summary["seed"] == int(job) + 1


def test_resume_without_an_earlier_sweep_says_how_to_point_at_one(tiny_backbone, outputs, capsys):
    assert train_in_process("-m", "seed=1,2", *tiny_run(tiny_backbone), "resume=true") == 2
    error = capsys.readouterr().err
    assert "no earlier sweep" in error and "hydra.sweep.dir=" in error and "Traceback" not in error
    assert not outputs.exists()  # nothing ran
