"""bench/throughput.py --quick still runs end to end and reports every number (no speed is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.runs import ROOT

ARMS = ("tunelab_same", "hf_same", "raw_same", "tunelab_default", "hf_default", "hf_grouped")


@pytest.mark.slow
def test_quick_benchmark_reports_every_number(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "throughput.py"), "--quick", "--out", str(tmp_path), "--name", "q"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["complete"] and (tmp_path / "q.md").read_text().count("|") > 50

    for key in ("cpu", "cores", "ram_gb", "threads", "bytecode"):
        assert report["machine"][key]
    assert set(report["machine"]["versions"]) >= {"torch", "transformers", "lightning"}

    for arm in ARMS:
        numbers = report["summary"][arm]
        for key in (
            "samples_per_s",
            "real_tokens_per_s",
            "padded_tokens_per_s",
            "first_step_s",
            "train_start_s",
            "peak_rss_mb",
        ):
            assert numbers[key] > 0, (arm, key)
        assert numbers["real_tokens_per_s"] <= numbers["padded_tokens_per_s"]
        assert numbers["threads"] == report["machine"]["threads"]
    for arm in ("tunelab_default", "hf_default", "hf_grouped"):
        assert 0 <= report["summary"][arm]["test_accuracy"] <= 1 and report["summary"][arm]["eval_samples_per_s"] > 0
    # the *_same arms stepped on exactly the same batches; length grouping cut the padding
    assert report["same_batches"] is True
    assert report["summary"]["tunelab_default"]["pad_fraction"] < report["summary"]["hf_default"]["pad_fraction"]
    # transformers 5.23: group_by_length also reorders Trainer.predict(); tunelab's predictions keep input order
    assert report["summary"]["hf_grouped"]["predict_rows_in_input_order"] is False
    assert report["predict"]["labels_match_pipeline"] is True
    assert all(v > 0 for v in report["predict"]["samples_per_s"].values())

    startup = report["startup"]
    assert startup["help_s"] > 0 and startup["bare_import_s"] > 0 and startup["tunelab_first_step_s"] > 0
    assert report["cache"]["first"]["rows_tokenized"] > 0
    assert report["cache"]["second"] == {
        **report["cache"]["second"],
        "rows_tokenized": 0,
        "hit": True,
        "same_tokens": True,
    }
    assert len(report["targets"]) == 10 and all(t["measured"] is not None for t in report["targets"])
    # the paired per-round view of each speed ratio, and the CPU other processes took during each arm
    assert all(len(t["per_round"]) == 1 for t in report["targets"][:4])
    shares = [r["others_cpu_share"] for arm in ARMS for r in report["runs"][arm]]
    assert all(0 <= s <= 1 for s in shares)
    assert "Other processes' CPU while an arm ran" in (tmp_path / "q.md").read_text()

    # --resummarize recomputes the same report from the stored per-step clocks, running nothing
    before = json.loads((tmp_path / "q.json").read_text())
    again = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "throughput.py"), "--resummarize", str(tmp_path / "q.json")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    after = json.loads((tmp_path / "q.json").read_text())
    assert [t["measured"] for t in after["targets"]] == [t["measured"] for t in before["targets"]]
    assert "Paired per-step cost on identical batches" in (tmp_path / "q.md").read_text()
