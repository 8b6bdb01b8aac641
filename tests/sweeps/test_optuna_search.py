"""Optuna search with pruning (optuna >= 3) as a Hydra sweeper: sweeps=optuna_lr on a tiny backbone."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from helpers.runs import train_in_process
from tunelab.sweeps.compare import collect


def _search(backbone: str, *extra: str) -> int:
    return train_in_process(
        "-m",
        "sweeps=optuna_lr",
        "hydra.sweeper.n_trials=2",
        f"model.backbone={backbone}",
        "data.batch_size=16",
        "data.max_samples={train: 64, validation: 32, test: 32}",
        "data.cache=false",
        "~callbacks.progress_bar",
        "print_config=false",
        "~hydra.sweeper.params",  # the tiny backbone has 2 blocks: search the lr only
        "+hydra.sweeper.params={optimizer.lr: {type: float, low: 1e-5, high: 1e-3, log: true}}",
        *extra,
    )


def test_trials_report_each_validation_and_pruned_trials_stop(tiny_backbone, outputs):
    # a pruner that prunes every trial at its first report: the run must stop there
    code = _search(
        tiny_backbone,
        "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
        "+hydra.sweeper.pruner.lower=1.1",
        "~hydra.sweeper.pruner.n_startup_trials",
        "~hydra.sweeper.pruner.n_warmup_steps",
    )
    assert code == 0
    (sweep,) = (outputs / "multirun").iterdir()
    study = json.loads((sweep / "optuna.json").read_text())
    assert study["counts"]["pruned"] == 2 and study["counts"]["complete"] == 0 and study["best"] is None
    # 64 rows / 16 = 4 steps per epoch, validation every half epoch: pruned at the first one, step 2 of 8
    assert [t["last_step"] for t in study["trials"]] == [2, 2]
    for run in collect([str(sweep)]):
        assert run.status == "pruned" and "pruned at step 2: val/accuracy=" in run.error
        assert not (run.path / "metrics.json").exists()


def test_completed_trials_are_scored_by_their_best_validation_and_resume_adds_none(tiny_backbone, outputs):
    assert (
        _search(
            tiny_backbone,
            "hydra.sweeper.pruner._target_=optuna.pruners.NopPruner",
            "~hydra.sweeper.pruner.n_startup_trials",
            "~hydra.sweeper.pruner.n_warmup_steps",
        )
        == 0
    )
    (sweep,) = (outputs / "multirun").iterdir()
    study = json.loads((sweep / "optuna.json").read_text())
    assert study["counts"]["complete"] == 2
    bests = [
        json.loads((sweep / str(t["number"]) / "metrics.json").read_text())["monitor"]["best"] for t in study["trials"]
    ]
    assert [t["value"] for t in study["trials"]] == bests and study["best"]["value"] == max(bests)
    lrs = [t["params"]["optimizer.lr"] for t in study["trials"]]
    assert all(1e-5 <= lr <= 1e-3 for lr in lrs) and len(set(lrs)) == 2  # in the search range, one per trial
    for trial in study["trials"]:  # each job trained with its own trial's lr
        config = OmegaConf.load(sweep / str(trial["number"]) / "config.yaml")
        assert config.optimizer.lr == pytest.approx(trial["params"]["optimizer.lr"], rel=1e-12)
    best = study["best"]
    best_run = json.loads((sweep / str(best["number"]) / "metrics.json").read_text())
    assert best["value"] == best_run["monitor"]["best"]
    assert best["params"] == study["trials"][best["number"]]["params"]

    # the same command with resume=true finds the study complete and launches nothing
    assert (
        _search(
            tiny_backbone,
            "hydra.sweeper.pruner._target_=optuna.pruners.NopPruner",
            "~hydra.sweeper.pruner.n_startup_trials",
            "~hydra.sweeper.pruner.n_warmup_steps",
            "resume=true",
        )
        == 0
    )
    assert list((outputs / "multirun").iterdir()) == [sweep]
    assert len(json.loads((sweep / "optuna.json").read_text())["trials"]) == 2
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1"]


NO_PRUNING = (
    "hydra.sweeper.pruner._target_=optuna.pruners.NopPruner",
    "~hydra.sweeper.pruner.n_startup_trials",
    "~hydra.sweeper.pruner.n_warmup_steps",
)


def test_a_metric_whose_lower_values_are_better_is_minimized(tiny_backbone, outputs):
    # task.metric_mode=min (a loss; perplexity for task=causal_lm): the study minimizes and its best trial is the
    # lowest; conf/sweeps/optuna_lr.yaml says maximize for its val/accuracy, so this search names no direction
    assert (
        _search(
            tiny_backbone, "task.metric=val/loss", "task.metric_mode=min", "hydra.sweeper.direction=null", *NO_PRUNING
        )
        == 0
    )
    (sweep,) = (outputs / "multirun").iterdir()
    study = json.loads((sweep / "optuna.json").read_text())
    bests = [
        json.loads((sweep / str(t["number"]) / "metrics.json").read_text())["monitor"]["best"] for t in study["trials"]
    ]
    assert study["direction"] == "minimize" and len(set(bests)) == 2
    assert [t["value"] for t in study["trials"]] == bests and study["best"]["value"] == min(bests)


def test_a_direction_against_the_metric_mode_is_refused(tiny_backbone, outputs, capsys):
    code = _search(
        tiny_backbone, "task.metric=val/loss", "task.metric_mode=min", "hydra.sweeper.direction=maximize", *NO_PRUNING
    )
    assert code == 1
    assert (
        "hydra.sweeper.direction=maximize contradicts task.metric_mode=min of the followed val/loss"
        in capsys.readouterr().err
    )
    assert not list((outputs / "multirun").rglob("metrics.json"))  # no trial ran


def test_another_followed_metric_scores_trials_by_its_last_value_and_needs_a_direction(tiny_backbone, outputs, capsys):
    # the checkpoints follow val/accuracy; the search follows val/loss (lower is better, said explicitly)
    assert (
        _search(tiny_backbone, "hydra.sweeper.monitor=val/loss", "hydra.sweeper.direction=minimize", *NO_PRUNING) == 0
    )
    (sweep,) = (outputs / "multirun").iterdir()
    study = json.loads((sweep / "optuna.json").read_text())
    losses = [
        json.loads((sweep / str(t["number"]) / "metrics.json").read_text())["metrics"]["val/loss"]
        for t in study["trials"]
    ]
    assert study["direction"] == "minimize"
    assert [t["value"] for t in study["trials"]] == pytest.approx(losses) and study["best"]["value"] == min(losses)

    capsys.readouterr()
    assert _search(tiny_backbone, "hydra.sweeper.monitor=val/loss", "hydra.sweeper.direction=null", *NO_PRUNING) == 1
    assert (
        "hydra.sweeper.monitor=val/loss is not task.metric (val/accuracy): say which way is better"
        in capsys.readouterr().err
    )
