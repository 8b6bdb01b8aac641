"""W&B inside a sweep, offline (no key, no prompt): group, name, tags, flat config, resumed run id."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from helpers.runs import train_in_process
from helpers.wandb_records import records


def _run_records(job: Path) -> list:
    """The records of each offline run of a job, oldest first. W&B's writer process may still be
    flushing a file when the job returns (seen under load): wait for every file's run record."""
    deadline = time.monotonic() + 60
    while True:
        runs = [list(records(f)) for f in sorted(job.glob("wandb/offline-run-*/run-*.wandb"))]
        complete = all(any(r.WhichOneof("record_type") == "run" for r in recs) for recs in runs)
        if complete or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def _first(recs, kind):
    return next(getattr(r, kind) for r in recs if r.WhichOneof("record_type") == kind)


def _config(recs) -> dict:
    return {
        item.key: json.loads(item.value_json)
        for r in recs
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }


def test_wandb_offline_runs_carry_group_name_tags_and_config(tiny_backbone, tmp_path, monkeypatch):
    from tunelab.assets import cache_dir

    monkeypatch.setenv("TUNELAB_CACHE", str(cache_dir()))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: no key anywhere
    monkeypatch.setenv("TUNELAB_OUTPUTS", str(tmp_path / "outputs"))
    for name in ("WANDB_API_KEY", "WANDB_MODE"):  # set then delete: monkeypatch restores them afterwards
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    tiny = [
        f"model.backbone={tiny_backbone}",
        "trainer.max_epochs=1",
        "data.batch_size=8",
        "data.cache=false",
        "data.max_samples={train: 32, validation: 16, test: 16}",
        "~callbacks.progress_bar",
        "print_config=false",
        "logger=[csv,tensorboard,wandb]",
    ]
    code = train_in_process("-m", "sweeps=seeds", "seed=1,2", "optimizer.lr=1e-4", *tiny)
    assert code == 0
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    assert os.environ["WANDB_MODE"] == "offline"  # chosen automatically, nothing prompted

    ids = set()
    for job, seed in (("0", 1), ("1", 2)):
        runs = _run_records(sweep / job)
        assert len(runs) == 1, "each job of the sweep has its own W&B run"
        run = _first(runs[0], "run")
        assert run.run_group == f"seeds-{sweep.name}" and "seeds" in run.tags and run.job_type == "train"
        assert f"seed={seed}" in run.display_name and "optimizer.lr=0.0001" in run.display_name
        assert "sweeps=" not in run.display_name  # said by the group
        assert run.run_id == (sweep / job / "wandb" / "run-id").read_text().strip()
        config = _config(runs[0])
        assert config["seed"] == seed and config["optimizer.lr"] == 1e-4 and config["trainer.max_epochs"] == 1
        assert (sweep / job / "csv" / "metrics.csv").exists() and list((sweep / job / "tensorboard").glob("events.*"))
        ids.add(run.run_id)
    assert len(ids) == 2

    # resuming a job continues its W&B run: same id
    code = train_in_process(
        *tiny, "seed=1", "optimizer.lr=1e-4", f"hydra.run.dir={sweep / '0'}", "ckpt_path=last", "trainer.max_epochs=2"
    )
    assert code == 0
    runs = _run_records(sweep / "0")
    files = {str(f.relative_to(sweep)): f.stat().st_size for f in sorted((sweep / "0").glob("wandb/offline-run-*/*"))}
    assert len(runs) == 2 and all(runs), files
    assert _first(runs[1], "run").run_id == _first(runs[0], "run").run_id
