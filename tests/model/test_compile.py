"""model.compile (torch.compile once, in configure_model) and model.attn_implementation."""

from __future__ import annotations

import datasets
import lightning as L
import pytest
import torch

from helpers.tasks import compose_config, task_batch
from tunelab.model.backbone import load_tokenizer
from tunelab.model.module import TuneModule
from tunelab.tasks.classification import SequenceClassification

ROWS = [{"text": t, "label": y} for t, y in [("a fine film", "pos"), ("dull and long", "neg")] * 4]


class Losses(L.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(outputs["loss"]))


def train_two_steps(backbone: str, **module_kwargs) -> tuple[list[float], TuneModule]:
    torch.manual_seed(0)  # the head's initialisation
    task = SequenceClassification()
    tokenizer = load_tokenizer(backbone)
    task.setup(tokenizer, task.labels_from(datasets.Dataset.from_list(ROWS)))
    batch = task_batch(task, tokenizer, ROWS)
    # no dropout: compiled code draws its dropout masks differently from eager code
    module = TuneModule(backbone, task, dropout={"hidden": 0.0, "attention": 0.0}, **module_kwargs)
    losses = Losses()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[losses],
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch] * 2, batch_size=None))
    return losses.values, module


@pytest.mark.slow
def test_compiled_model_trains_with_the_uncompiled_losses(tiny_backbone):
    eager, plain = train_two_steps(tiny_backbone)
    compiled, module = train_two_steps(tiny_backbone, compile=True)
    assert module._compiled and module.model._compiled_call_impl is not None  # compiled, and only once
    assert not plain._compiled and plain.model._compiled_call_impl is None
    assert len(compiled) == 2 and compiled == pytest.approx(eager, abs=1e-4)  # the second loss is after a step
    # compiled in place: the checkpoint keys stay the plain model's (no "_orig_mod." prefix)
    assert list(module.state_dict()) == list(plain.state_dict())


def test_attn_implementation_reaches_the_backbone(tiny_backbone):
    task = SequenceClassification(labels=["neg", "pos"])
    assert TuneModule(tiny_backbone, task, attn_implementation="eager").model.config._attn_implementation == "eager"
    assert TuneModule(tiny_backbone, task, attn_implementation="sdpa").model.config._attn_implementation == "sdpa"
    assert TuneModule(tiny_backbone, task).model.config._attn_implementation == "sdpa"  # transformers' default


def test_the_model_config_has_both_keys_off_by_default():
    model = compose_config().model
    assert model.compile is False and model.attn_implementation is None
    model = compose_config("model.compile=true", "model.attn_implementation=eager").model
    assert model.compile is True and model.attn_implementation == "eager"
