"""Every optimizer config trains through the command line: ``optimizer=<name> optimizer.lr=<lr>`` takes a
few optimizer steps with that optimizer at that learning rate (conf/optimizer/, issue 16 item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers.runs import ROOT, quick, train_in_process

# option -> (an lr other than its default, a state entry only that optimizer family keeps)
OPTIMIZERS = {
    "adamw": (1e-3, "exp_avg"),
    "adam": (1e-3, "exp_avg"),
    "sgd": (0.1, "momentum_buffer"),
    "radam": (1e-3, "exp_avg"),
    "nadam": (1e-3, "mu_product"),
    "adagrad": (1e-2, "sum"),
    "rmsprop": (1e-4, "square_avg"),
    "adafactor": (1e-2, "exp_avg_sq_row"),  # a matrix's second moment factored into rows and columns
}


def test_every_optimizer_config_is_listed_here():
    assert sorted(OPTIMIZERS) == sorted(p.stem for p in (ROOT / "conf" / "optimizer").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_trains_at_the_lr_it_is_given(name, tiny_backbone, tmp_path, outputs):
    lr, state_key = OPTIMIZERS[name]
    run = tmp_path / "run"
    code = train_in_process(*quick(tiny_backbone, run, f"optimizer={name}", f"optimizer.lr={lr}", "test=false"))
    assert code == 0
    # weights_only, as a resume reads it: the optimizer state holds no config objects (_convert_: all)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4  # 64 rows, batch 16, one epoch
    (optimizer,) = checkpoint["optimizer_states"]
    # the schedule starts from optimizer.lr as given (Adafactor: relative_step=false, scale_parameter=false)
    assert {group["initial_lr"] for group in optimizer["param_groups"]} == {lr}
    own_keys = {
        k: v for k, v in OmegaConf.load(ROOT / "conf" / "optimizer" / f"{name}.yaml").items() if not k.startswith("_")
    }
    own_keys.pop("defaults", None)
    for key, value in own_keys.items():  # each key of the option's file reached the optimizer
        if key not in ("lr", "weight_decay"):  # lr: scheduled; weight_decay: 0 on the no-decay group
            got = optimizer["param_groups"][0][key]
            assert (list(got) if isinstance(value, list) else got) == value, key
    states = list(optimizer["state"].values())
    assert states and all(states), "every trained parameter has optimizer state"
    assert any(state_key in state for state in states), f"{name}: no {state_key!r} in its state"
    losses = _train_losses(run)
    assert len(losses) >= 2 and len(set(losses)) > 1


def _train_losses(run: Path) -> list[float]:
    import csv

    with open(run / "csv" / "metrics.csv") as f:
        return [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]
