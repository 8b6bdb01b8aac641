"""Every peft / adversarial option composes and builds a TuneModule; the issue's sweep composes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tunelab.config import config_dir

CONF = Path(config_dir())
OPTIONS = [(g, p.stem) for g in ("peft", "adversarial") for p in sorted((CONF / g).glob("*.yaml"))]


def compose_config(*overrides, hydra=False):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "train", overrides=["paths.output_dir=/tmp/tunelab-compose", *overrides], return_hydra_config=hydra
        )


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_tuning_option_builds(group, option, tiny_backbone):
    cfg = compose_config(f"{group}={option}")
    cfg.model.backbone = tiny_backbone
    module = instantiate(cfg.model, task=instantiate(cfg.task, labels=["a", "b"]))
    report = module.num_parameters()
    if group == "peft" and option != "none":
        assert 0 < report["trainable"] < report["total"]
        assert module.checkpoint_contents.partial  # the checkpoint will hold only the trained part
    else:
        assert report["trainable"] == report["total"] and not module.checkpoint_contents.partial


def test_sweep_of_what_trains_composes(tiny_backbone):
    cfg = compose_config("peft=bitfit", "model.freeze.layers=2", f"model.backbone={tiny_backbone}")
    module = instantiate(cfg.model, task=instantiate(cfg.task, labels=["a", "b"]))
    layer1 = module.model.bert.encoder.layer[1]
    assert not any(p.requires_grad for p in layer1.parameters())
    assert module.model.classifier.weight.requires_grad
    sweep = compose_config("sweeps=peft_methods", hydra=True)
    assert "mr_peft_lora" in sweep.hydra.sweeper.params.experiment
