"""Every peft / adversarial option composes and builds a TuneModule with the object it names; model.freeze and
model.layer_decay build their objects, with the overrides users type; the issue's sweep composes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tunelab.config import config_dir
from tunelab.tuning import TuningMethod

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
    node = cfg.model[group]
    built = module.peft if group == "peft" else module.adversarial
    if node is None:  # none: nothing built (full fine-tuning uses the base TuningMethod)
        assert built is None if group == "adversarial" else type(built) is TuningMethod
    else:
        assert type(built).__qualname__ == node._target_.rsplit(".", 1)[-1]
        if group == "peft" and "method" in node:
            assert built.name == node.method == option
        if group == "adversarial":
            assert (built.epsilon, built.steps) == (node.epsilon, node.steps)
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


def _build(tiny_backbone, *overrides):
    cfg = compose_config(f"model.backbone={tiny_backbone}", *overrides)
    return instantiate(cfg.model, task=instantiate(cfg.task, labels=["a", "b"]))


def test_freeze_builds_its_object_from_the_overrides_users_type(tiny_backbone):
    from tunelab.tuning.freeze import Freeze

    module = _build(tiny_backbone, "model.freeze.layers=1", "model.freeze.embeddings=true")
    cfg = compose_config("model.freeze.layers=-1")
    frozen = instantiate(cfg.model.freeze)
    assert isinstance(frozen, Freeze) and (frozen.embeddings, frozen.layers, frozen.backbone) == (False, -1, False)
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert not any(".layer.0." in n or "embeddings" in n for n in trainable)
    assert any(".layer.1." in n for n in trainable) and "classifier.weight" in trainable


@pytest.mark.parametrize("override", ["model.layer_decay.rate=0.5", "model.layer_decay=0.5"])
def test_layer_decay_builds_its_object_with_either_spelling(override, tiny_backbone):
    from tunelab.tuning.layer_decay import LayerDecay

    module = _build(tiny_backbone, override)
    assert isinstance(module.layer_decay, LayerDecay) and module.layer_decay.rate == 0.5
    scales = {g["name"]: g["lr_scale"] for g in module.layer_decay.param_groups(module.model)}
    # 2 blocks: embeddings at 0.5^3 of the lr, block0 0.5^2, block1 0.5, the head at the base lr
    assert (scales["embeddings.decay"], scales["block0.decay"], scales["block1.decay"], scales["head.decay"]) == (
        0.125,
        0.25,
        0.5,
        1.0,
    )


def test_no_layer_decay_gives_the_two_plain_groups(tiny_backbone):
    module = _build(tiny_backbone)
    groups = module.layer_decay.param_groups(module.model)
    assert [(g["name"], g["decay"], g["lr_scale"]) for g in groups] == [("decay", True, 1.0), ("no_decay", False, 1.0)]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["+model.freeze.blocks=2"],
            r"tunelab.tuning.freeze.Freeze takes no argument 'blocks'.*It takes embeddings, layers",
        ),
        (["model.layer_decay.rate=1.5"], r"model.layer_decay.rate must be in \(0, 1\]"),
        (["model.freeze.layers=two"], r"model.freeze.layers must be an integer"),
        (["adversarial=fgm", "+model.adversarial.eps=0.1"], r"EmbeddingAdversary takes no argument 'eps'.*epsilon"),
    ],
)
def test_tuning_object_mistakes_are_one_clear_message(overrides, message, tiny_backbone, tmp_path, capsys, monkeypatch):
    from helpers.errors import assert_one_clear_message

    assert_one_clear_message(overrides, message, tiny_backbone, tmp_path / "run", capsys, monkeypatch)
