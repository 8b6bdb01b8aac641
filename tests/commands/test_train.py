"""`tunelab train` end to end on a tiny model: the files a run writes, plain Python, a user's own head."""

from __future__ import annotations

import json
from functools import partial
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from helpers.runs import quick, read_metrics, tiny_run, train_in_process
from tunelab.tasks import SequenceClassification


def test_a_run_writes_config_checkpoints_logs_and_metrics(tiny_backbone, tmp_path):
    run = tmp_path / "run"
    assert train_in_process(*quick(tiny_backbone, run)) == 0
    metrics = read_metrics(run)
    assert set(metrics["metrics"]) >= {"val/accuracy", "test/accuracy", "test/f1_macro", "test/loss"}
    assert 0.0 <= metrics["metrics"]["test/accuracy"] <= 1.0
    assert metrics["data"]["sizes"] == {"train": 64, "validation": 32, "test": 32}
    assert metrics["global_steps"] == 4 and metrics["epochs"] == 1
    assert metrics["parameters"]["trainable"] == metrics["parameters"]["total"] > 0
    assert (run / "checkpoints" / "best.ckpt").exists() and (run / "checkpoints" / "last.ckpt").exists()
    assert metrics["best_checkpoint"] == "checkpoints/best.ckpt"
    assert "train/loss" in (run / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "backbone: " + tiny_backbone in (run / "config.yaml").read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert (
        "Loaded model weights from the checkpoint at " + str(run / "checkpoints" / "best.ckpt")
        in (run / "train.log").read_text()
    )  # the test ran on the best checkpoint


def test_optimizer_groups_skip_decay_on_bias_and_layernorm(tiny_backbone):
    from tunelab.model.module import TuneModule

    task = SequenceClassification(labels=["a", "b"])
    module = TuneModule(tiny_backbone, task, optimizer=partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.1))
    module.trainer = SimpleNamespace(estimated_stepping_batches=10)
    opt = module.configure_optimizers()["optimizer"]  # with tunelab train's default schedule
    groups = {g["name"]: g for g in opt.param_groups}
    names = {id(p): n for n, p in module.model.named_parameters()}
    no_decay = [names[id(p)] for p in groups["no_decay"]["params"]]
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    assert all(n.endswith("bias") or "LayerNorm" in n for n in no_decay)
    assert any("LayerNorm.weight" in n for n in no_decay)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(module.model.parameters()))


def test_schedules_warm_up_then_decay():
    from tunelab.model.optim import cosine_with_warmup, linear_with_warmup

    for schedule, end in ((linear_with_warmup, 0.0), (cosine_with_warmup, 0.0)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = schedule(opt, num_training_steps=100, warmup=0.1)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        # transformers' warm-up: step s at s / 10 of the base rate (the first step at 0), the peak at step 10
        assert lrs[0] == 0.0 and lrs[9] == pytest.approx(0.9) and lrs[10] == pytest.approx(1.0)
        assert lrs[10] > lrs[50] > lrs[99] >= end
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-6)


def test_plain_python_defaults_are_the_optimizer_and_schedule_tunelab_train_builds(tiny_backbone):
    from helpers.tasks import compose_config
    from tunelab.config import instantiate
    from tunelab.model.module import TuneModule

    module = TuneModule(tiny_backbone, SequenceClassification(labels=["a", "b"]))
    module.trainer = SimpleNamespace(estimated_stepping_batches=20)
    built = module.configure_optimizers()
    cfg = compose_config()
    cli = instantiate(cfg.optimizer, "optimizer")
    optimizer = built["optimizer"]
    assert type(optimizer) is cli.func is torch.optim.AdamW and optimizer.defaults["fused"] is True
    assert {k: optimizer.defaults[k] for k in cli.keywords if k != "betas"} == {
        k: v for k, v in cli.keywords.items() if k != "betas"
    }
    reference = cli([torch.nn.Parameter(torch.zeros(1))])
    expected = instantiate(cfg.scheduler, "scheduler")(reference, num_training_steps=20)
    for _ in range(20):  # the same curve step by step: 10% warm-up, then linear decay
        assert optimizer.param_groups[0]["lr"] == pytest.approx(reference.param_groups[0]["lr"])
        built["lr_scheduler"]["scheduler"].step(), expected.step()


def test_plain_python_without_hydra(tiny_backbone, tmp_path):
    from tunelab.data import TuneDataModule
    from tunelab.data.sources import builtin
    from tunelab.model.module import TuneModule

    task = SequenceClassification()
    data = TuneDataModule(
        loader=partial(builtin, "mr"),
        task=task,
        tokenizer=tiny_backbone,
        batch_size=16,
        max_samples={"train": 64, "validation": 32, "test": 32},
        cache=False,
    )
    task.setup(data.tokenizer, data.learn_labels())
    data.setup("fit")
    module = TuneModule(tiny_backbone, task, optimizer=partial(torch.optim.AdamW, lr=1e-3))
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, data)
    result = trainer.test(module, data, verbose=False)[0]
    assert trainer.global_step == 4
    assert set(result) == {"test/loss", "test/accuracy", "test/f1_macro"}


def test_users_own_head_through_target(tiny_backbone, tmp_path):
    run = tmp_path / "run"
    code = train_in_process(*quick(tiny_backbone, run, "task._target_=helpers.own_head.MeanPoolClassification"))
    assert code == 0
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert "model.head.weight" in state and state["model.head.weight"].shape == (2, 32)
    assert "test/accuracy" in read_metrics(run)["metrics"]


def test_bf16_mixed_with_clipping_trains_with_the_default_fused_adamw(tiny_backbone, tmp_path):
    """The default AdamW is fused; Lightning cannot clip with a fused optimizer under mixed precision,
    so there the module builds the per-tensor kernel instead (the default clipping, 1.0, stays on)."""
    from tunelab.model.module import TuneModule

    run = tmp_path / "run"
    assert train_in_process(*quick(tiny_backbone, run, "trainer.precision=bf16-mixed")) == 0
    # the bf16 test pass and the per-row predictions (the best checkpoint, bf16 too) agree on every test row
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(32))
    accuracy = read_metrics(run)["metrics"]["test/accuracy"]
    assert 0.0 <= accuracy <= 1.0 and accuracy == pytest.approx(sum(r["correct"] for r in rows) / 32)
    module = TuneModule(
        tiny_backbone,
        SequenceClassification(labels=["a", "b"]),
        optimizer=partial(torch.optim.AdamW, lr=1e-3, fused=True),
        scheduler=None,
    )
    assert module.configure_optimizers().defaults["fused"] is True  # no trainer, no mixed precision: fused


def test_callbacks_ema_saves_and_tests_the_averaged_weights(tiny_backbone, tmp_path):
    """callbacks=ema: best.ckpt holds the exponential average of the weights (what validation saw),
    the raw weights ride along as current_model_state, and the test ran on the average."""
    run = tmp_path / "run"
    assert (
        train_in_process(*quick(tiny_backbone, run, "callbacks=ema", "callbacks.ema.decay=0.5", "optimizer.lr=1e-2"))
        == 0
    )
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    name = next(k for k in averaged if k.endswith("classifier.weight"))
    assert not torch.equal(averaged[name], raw[name])  # 4 steps at lr 1e-2: the average lags the raw weights
    assert "test/accuracy" in read_metrics(run)["metrics"]


def test_enable_checkpointing_false_writes_no_checkpoint_and_tests_the_final_weights(tiny_backbone, tmp_path):
    """The checkpoint callbacks of conf/callbacks/default.yaml step aside (Lightning refuses them alongside
    enable_checkpointing=false): nothing is saved, and the test runs on the weights fit ended with."""
    run = tmp_path / "run"
    assert train_in_process(*quick(tiny_backbone, run, "trainer.enable_checkpointing=false")) == 0
    assert not (run / "checkpoints").exists()
    summary = read_metrics(run)
    assert summary["best_checkpoint"] == "" and summary["checkpoint_mb"] is None and summary["monitor"]["best"] is None
    assert {"val/accuracy", "test/accuracy", "test/loss"} <= set(summary["metrics"])
    assert "Loaded model weights" not in (run / "train.log").read_text()  # no checkpoint loaded for the test
    rows = (run / "test_predictions.jsonl").read_text().splitlines()
    assert len(rows) == 32


def test_fsdp_strategy_tests_and_predicts_with_the_weights_only_best_checkpoint(tiny_backbone, tmp_path):
    """trainer=fsdp's strategy (one process here; tests/model/test_sharding.py runs two): after fit, test and
    predict load best.ckpt, saved without optimizer state, for its weights. Lightning's own strategy asks
    that checkpoint for the optimizer states fit left behind, and fails."""
    from helpers.tasks import compose_config
    from tunelab.commands.parts import build
    from tunelab.config import instantiate, instantiate_each
    from tunelab.run.distributed import job_world

    overrides = [*tiny_run(tiny_backbone), "trainer=fsdp", "trainer.devices=1", "~callbacks.lr_monitor"]
    cfg = compose_config(*overrides, f"paths.output_dir={tmp_path}")
    best = tmp_path / "checkpoints" / "best.ckpt"
    with job_world():  # ends the one-process group the strategy starts
        parts = build(cfg)
        trainer = instantiate(cfg.trainer, "trainer", callbacks=instantiate_each(cfg.callbacks), logger=False)
        trainer.fit(parts.module, datamodule=parts.datamodule)
        assert best.is_dir() and trainer.strategy.optimizers  # sharded; fit's optimizers are still there
        tested = trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=str(best), verbose=False)
        predicted = trainer.predict(parts.module, dataloaders=parts.datamodule.test_dataloader(), ckpt_path=str(best))
    assert set(tested[0]) == {"test/loss", "test/accuracy", "test/f1_macro"}
    assert sum(len(rows) for rows in predicted) == 16
