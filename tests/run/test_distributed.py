"""DDP inside a Hydra multirun: each 2-process job runs exactly once and writes one run directory."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.runs import tiny_run, tunelab


def test_ddp_job_inside_a_multirun_runs_once_per_job(tiny_backbone, tmp_path):
    starts = tmp_path / "starts.jsonl"
    result = tunelab(
        "train",
        "-m",
        "seed=1,2",
        "trainer=ddp",
        *tiny_run(tiny_backbone),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "+callbacks.record._target_=helpers.sweep_probes.RecordStart",
        f"+callbacks.record.path={starts}",
        outputs=tmp_path / "outputs",
    )
    assert result.returncode == 0, result.stderr[-3000:]

    lines = [json.loads(line) for line in starts.read_text().splitlines()]
    # 2 jobs x 2 ranks, each (job, rank) started exactly once: no rank re-ran the sweep
    assert sorted((Path(r["job"]).name, r["rank"]) for r in lines) == [("0", 0), ("0", 1), ("1", 0), ("1", 1)]
    # rank 0 of both jobs is the sweep's own process (basic launcher); each job started its own rank 1
    rank0 = {r["pid"] for r in lines if r["rank"] == 0}
    rank1 = [r["pid"] for r in lines if r["rank"] == 1]
    assert len(rank0) == 1 and len(set(rank1)) == 2 and not rank0 & set(rank1)
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    for job in jobs:
        summary = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert summary["seed"] == int(job) + 1
        assert "test/accuracy" in summary["metrics"]
    # nothing else was written: no stray single runs from a re-launched rank
    assert not (tmp_path / "outputs" / "runs").exists()
