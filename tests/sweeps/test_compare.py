"""`tunelab compare` on a sweep folder: table, seed statistics, best marker, statuses, files."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from tunelab.cli import main
from tunelab.errors import TunelabError
from tunelab.sweeps.compare import compare

# (lr, seed) -> test/accuracy; None: the job did not finish
RESULTS = {
    ("1e-5", 1): 0.70,
    ("1e-5", 2): 0.74,
    ("1e-5", 3): 0.72,
    ("1e-4", 1): 0.80,
    ("1e-4", 2): 0.84,
    ("1e-4", 3): None,
}


def _job(folder: Path, overrides: list[str], accuracy: float | None, status: str = "running", error: str = ""):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "csv").mkdir()
    with open(folder / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss", "val/accuracy"])
        w.writerows([[0, 9, 0.6, ""], [0, 9, "", 0.6], [1, 19, "", (accuracy or 0.5) + 0.01]])
    if accuracy is not None:
        (folder / "metrics.json").write_text(
            json.dumps(
                {
                    "metrics": {"test/accuracy": accuracy, "test/loss": 1 - accuracy, "val/accuracy": accuracy + 0.01},
                    "monitor": {"metric": "val/accuracy", "mode": "max", "best": accuracy + 0.01},
                }
            )
        )
        status = "completed"
    (folder / "run.json").write_text(json.dumps({"status": status, "error": error}))


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "multirun" / "2026-01-01_00-00-00"
    for num, ((lr, seed), accuracy) in enumerate(RESULTS.items()):
        _job(
            root / str(num), ["sweeps=seeds", f"optimizer.lr={lr}", f"seed={seed}", "hydra.launcher.n_jobs=2"], accuracy
        )
    _job(root / "6", ["sweeps=seeds", "optimizer.lr=1e-3", "seed=1"], None, "failed", "RuntimeError: loss is nan")
    return root


def test_compare_aggregates_seeds_marks_best_and_unfinished(sweep, capsys):
    assert main(["compare", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "metric test/accuracy (max)" in out  # the test twin of the followed val/accuracy
    assert "common overrides: sweeps=seeds" in out and "n_jobs" not in out
    rows = {r["run"]: r for r in csv.DictReader(open(sweep / "compare" / "runs.csv"))}
    assert rows["5"]["status"] == "unfinished" and rows["6"]["status"] == "failed"
    assert "RuntimeError: loss is nan" in out
    assert [r for r in rows.values() if r["best"] == "*"] == [rows["3"], rows["4"]]  # lr=1e-4, its finished seeds

    summary = {r["optimizer.lr"]: r for r in csv.DictReader(open(sweep / "compare" / "summary.csv"))}
    assert float(summary["1e-5"]["test/accuracy mean"]) == pytest.approx(0.72)
    assert float(summary["1e-5"]["std"]) == pytest.approx(statistics.stdev([0.70, 0.74, 0.72]), abs=1e-4)
    assert float(summary["1e-4"]["median"]) == pytest.approx(0.82) and summary["1e-4"]["n"] == "2"
    assert summary["1e-4"]["failed/unfinished"] == "1" and summary["1e-4"]["best"] == "*"
    assert summary["1e-3"]["n"] == "0"

    markdown = (sweep / "compare" / "compare.md").read_text()
    assert "| * | 1e-4 | 0.8200 |" in markdown
    png = (sweep / "compare" / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # the best configuration's overrides, as a file and as a command that reruns it
    assert (sweep / "compare" / "best.overrides").read_text().split() == ["sweeps=seeds", "optimizer.lr=1e-4", "seed=2"]
    assert "tunelab train sweeps=seeds optimizer.lr=1e-4 seed=2" in (sweep / "compare" / "rerun_best.sh").read_text()


def test_compare_with_a_metric_no_run_has_lists_the_available_ones(sweep):
    with pytest.raises(TunelabError, match="No run has the metric 'test/f1'. Available: test/accuracy, test/loss"):
        compare([str(sweep)], metric="test/f1")


def test_compare_on_a_folder_without_runs_says_what_to_give(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "No runs in" in capsys.readouterr().err


def test_compare_over_folds_aggregates_a_cross_validation(tmp_path, capsys):
    # a 10-fold run (sweeps=mr_10fold) differs only by data.fold: one configuration, mean +- std over folds
    root = tmp_path / "cv"
    accuracies = [0.78, 0.80, 0.82, 0.79]
    for fold, accuracy in enumerate(accuracies):
        _job(root / str(fold), ["sweeps=mr_10fold", f"data.fold={fold}"], accuracy)
    assert main(["compare", str(root), "--over", "data.fold"]) == 0
    [row] = list(csv.DictReader(open(root / "compare" / "summary.csv")))
    assert float(row["test/accuracy mean"]) == pytest.approx(statistics.fmean(accuracies))
    assert float(row["std"]) == pytest.approx(statistics.stdev(accuracies), abs=1e-4) and row["n"] == "4"
    assert "## Over data.fold" in (root / "compare" / "compare.md").read_text()


def test_real_sweep_predictions_per_example_tests_and_rerun_top(tiny_backbone, outputs, tmp_path, capsys):
    from helpers.runs import train_in_process

    sweep = tmp_path / "sweep"
    args = [
        f"model.backbone={tiny_backbone}",
        "trainer.max_epochs=1",
        "data.max_samples={train: 64, validation: 32, test: 32}",
        "data.batch_size=16",
        "data.cache=false",
        "~callbacks.progress_bar",
        "print_config=false",
    ]
    assert train_in_process("-m", *args, "optimizer.lr=1e-4,3e-3", "seed=1", f"hydra.sweep.dir={sweep}") == 0
    for job in ("0", "1"):  # every run wrote its test predictions: one row per test example, in split order
        rows = [json.loads(line) for line in (sweep / job / "test_predictions.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == list(range(32))
        accuracy = json.loads((sweep / job / "metrics.json").read_text())["metrics"]["test/accuracy"]
        assert sum(r["correct"] for r in rows) / 32 == pytest.approx(accuracy)
        assert {r["gold"] for r in rows} <= {"positive", "negative"}
    record = (sweep / "multirun.yaml").read_bytes()

    assert main(["compare", str(sweep), "--rerun-top", "2", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    # one seed each: no test yet; after the rerun both configurations have seeds 1 and 2, paired
    assert "Not enough runs to test whether" in out
    after = out.split("after the reruns:")[1]
    assert "paired t-test on 2 shared seeds" in after and "Per example (32 shared test rows" in after
    assert "exact McNemar" in after and "seed=1:" in after and "seed=2:" in after
    assert (sweep / "multirun.yaml").read_bytes() == record  # resume=true still finds the original sweep
    for rank in (0, 1):
        rerun = sweep / f"rerun-c{rank}-seed2"
        assert json.loads((rerun / "metrics.json").read_text())["seed"] == 2
    summary = list(csv.DictReader(open(sweep / "compare" / "summary.csv")))
    assert sorted(r["n"] for r in summary) == ["2", "2"] and all(r["test"] in ("", "paired t") for r in summary)


def test_optuna_seeds_per_trial_scores_the_mean_and_compare_pairs_the_seeds(tiny_backbone, outputs, capsys):
    from helpers.runs import train_in_process

    assert (
        train_in_process(
            "-m",
            "sweeps=optuna_lr",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.seeds_per_trial=2",
            "seed=7",
            f"model.backbone={tiny_backbone}",
            "data.batch_size=16",
            "data.max_samples={train: 64, validation: 32, test: 32}",
            "data.cache=false",
            "~callbacks.progress_bar",
            "print_config=false",
            "trainer.max_epochs=1",
            "~hydra.sweeper.params",
            "+hydra.sweeper.params={optimizer.lr: {type: float, low: 1e-5, high: 1e-3, log: true}}",
            "hydra.sweeper.pruner._target_=optuna.pruners.NopPruner",
            "~hydra.sweeper.pruner.n_startup_trials",
            "~hydra.sweeper.pruner.n_warmup_steps",
        )
        == 0
    )
    (sweep,) = (outputs / "multirun").iterdir()
    study = json.loads((sweep / "optuna.json").read_text())
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]  # 2 trials x 2 seeds
    for trial in study["trials"]:
        jobs = [json.loads((sweep / str(2 * trial["number"] + i) / "metrics.json").read_text()) for i in (0, 1)]
        assert [j["seed"] for j in jobs] == [7, 8]  # the same seeds for every trial
        bests = [j["monitor"]["best"] for j in jobs]
        assert trial["seed_values"] == bests and trial["value"] == pytest.approx(statistics.fmean(bests))
    compare([str(sweep)])
    out = capsys.readouterr().out
    assert "paired t-test on 2 shared seeds" in out  # each trial's 2 runs form one configuration


def test_a_ddp_run_writes_every_test_row_once(tiny_backbone, tmp_path):
    import os
    import subprocess
    import sys

    run = tmp_path / "ddp"
    # 2 processes, 33 test rows: each predicts its share, rank 0 gathers all (and drops none, repeats none)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tunelab",
            "train",
            "trainer=ddp",
            "trainer.devices=2",
            f"model.backbone={tiny_backbone}",
            f"hydra.run.dir={run}",
            "trainer.max_epochs=1",
            "data.max_samples={train: 64, validation: 32, test: 33}",
            "data.batch_size=16",
            "data.cache=false",
            "~callbacks.progress_bar",
            "print_config=false",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "TUNELAB_OUTPUTS": str(tmp_path / "outputs")},
    )
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(33))
    accuracy = json.loads((run / "metrics.json").read_text())["metrics"]["test/accuracy"]
    assert sum(r["correct"] for r in rows) / 33 == pytest.approx(accuracy)
