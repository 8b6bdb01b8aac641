"""Each way of choosing what trains: a few real optimizer steps on a tiny model, then compare every
parameter tensor before and after: exactly the parameters the method should train have changed."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch

from tunelab.data import TuneDataModule
from tunelab.data.sources import builtin
from tunelab.model.module import TuneModule
from tunelab.tasks import SequenceClassification
from tunelab.tuning.adversarial import EmbeddingAdversary
from tunelab.tuning.freeze import BitFit, HeadOnly
from tunelab.tuning.peft_methods import PeftMethod


@pytest.fixture(scope="module")
def mr_tiny(tiny_backbone):
    task = SequenceClassification()
    data = TuneDataModule(
        loader=partial(builtin, "mr"),
        task=task,
        tokenizer=tiny_backbone,
        batch_size=8,
        max_samples={"train": 32, "validation": 16, "test": 16},
        cache=False,
    )
    task.setup(data.tokenizer, data.learn_labels())
    data.setup("fit")
    return task, data


def train_steps(module, data, steps: int = 3, **trainer_kwargs):
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        **trainer_kwargs,
    )
    trainer.fit(module, datamodule=data)
    return trainer


def changed_after_training(module, data, **trainer_kwargs) -> tuple[set, set]:
    """(names of parameters that changed, names of parameters marked trainable)."""
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    train_steps(module, data, **trainer_kwargs)
    after = dict(module.model.named_parameters())
    return {n for n, t in before.items() if not torch.equal(t, after[n].detach())}, trainable


def is_head(name: str) -> bool:
    return ".classifier." in f".{name}"


# method -> (TuneModule keywords, which parameter names may train besides the head)
CASES = {
    "full": ({}, lambda n: True),
    "lora": ({"peft": PeftMethod("lora", r=4)}, lambda n: "lora_" in n and (".query." in n or ".value." in n)),
    # modules_to_save adds modules that train fully beside the head (experiments/mr_peft_lora_pooler.yaml)
    "lora_pooler": (
        {"peft": PeftMethod("lora", r=4, modules_to_save=["pooler"])},
        lambda n: "lora_" in n or ".pooler." in f".{n}",
    ),
    "dora": ({"peft": PeftMethod("lora", r=4, use_dora=True)}, lambda n: "lora_" in n),
    "adalora": ({"peft": PeftMethod("adalora", init_r=4, target_r=2)}, lambda n: "lora_" in n),
    "ia3": ({"peft": PeftMethod("ia3")}, lambda n: "ia3_l" in n),
    "loha": ({"peft": PeftMethod("loha", r=4, alpha=8)}, lambda n: "hada_" in n),
    "lokr": ({"peft": PeftMethod("lokr", r=4, alpha=8)}, lambda n: "lokr_" in n),
    "prefix_tuning": ({"peft": PeftMethod("prefix_tuning", num_virtual_tokens=4)}, lambda n: "prompt_encoder" in n),
    "prompt_tuning": ({"peft": PeftMethod("prompt_tuning", num_virtual_tokens=4)}, lambda n: "prompt_encoder" in n),
    "bitfit": ({"peft": BitFit()}, lambda n: n.endswith(".bias")),
    "head_only": ({"peft": HeadOnly()}, lambda n: False),
    "freeze_layers_1": ({"freeze": {"layers": 1}}, lambda n: "embeddings" not in n and ".layer.0." not in n),
    "freeze_embeddings": ({"freeze": {"embeddings": True}}, lambda n: "embeddings" not in n),
    "freeze_backbone": ({"freeze": {"backbone": True}}, lambda n: False),
    "lora_freeze_layers_1": (
        {"peft": PeftMethod("lora", r=4), "freeze": {"layers": 1}},
        lambda n: "lora_" in n and ".layer.1." in n,
    ),
    "lora_fgm": (
        {"peft": PeftMethod("lora", r=4), "adversarial": EmbeddingAdversary(epsilon=0.5)},
        lambda n: "lora_" in n,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_method_trains_exactly_what_it_should(case, mr_tiny, tiny_backbone):
    task, data = mr_tiny
    kwargs, may_train = CASES[case]
    module = TuneModule(tiny_backbone, task, optimizer=partial(torch.optim.AdamW, lr=1e-2), **kwargs)
    changed, trainable = changed_after_training(module, data)
    assert changed <= trainable, f"changed but frozen: {sorted(changed - trainable)[:5]}"
    if case != "adalora":  # AdaLoRA masks some of its singular values back to zero by design
        assert changed == trainable, f"trainable but unchanged: {sorted(trainable - changed)[:5]}"
    assert any(is_head(n) for n in changed), "the task head always trains"
    assert any(not is_head(n) for n in changed) or case in ("head_only", "freeze_backbone")
    wrong = {n for n in changed if not is_head(n) and not may_train(n)}
    assert not wrong, f"{case} trained {sorted(wrong)[:5]}"
    if case == "full":
        assert changed == {n for n, _ in module.model.named_parameters()}
    if case in ("lora", "lora_pooler"):  # plain LoRA keeps BERT's pooler frozen; modules_to_save trains it
        assert any(".pooler." in f".{n}" for n in changed) == (case == "lora_pooler")


def test_parameter_report_counts_lora_exactly(mr_tiny, tiny_backbone):
    task, _ = mr_tiny
    report = TuneModule(tiny_backbone, task, peft=PeftMethod("lora", r=8)).num_parameters()
    # 2 blocks x (query, value) x r x (32 in + 32 out); the head is a 32x2 linear + bias
    assert report["groups"]["adapter"] == {"total": 2 * 2 * 8 * 64, "trainable": 2 * 2 * 8 * 64}
    assert report["groups"]["head"]["trainable"] == 32 * 2 + 2
    assert report["trainable"] == 2 * 2 * 8 * 64 + 66
    assert report["groups"]["blocks"]["trainable"] == 0 and report["groups"]["embeddings"]["trainable"] == 0
    assert report["trainable_percent"] == round(100 * report["trainable"] / report["total"], 4)


def test_layer_decay_gives_one_group_per_block_and_the_head_the_base_lr(mr_tiny, tiny_backbone):
    task, _ = mr_tiny
    module = TuneModule(
        tiny_backbone,
        task,
        optimizer=partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01),
        scheduler=None,
        layer_decay=0.5,
    )
    groups = {g["name"]: g for g in module.configure_optimizers().param_groups}
    assert groups["head.decay"]["lr"] == pytest.approx(1e-3)
    assert groups["block1.decay"]["lr"] == pytest.approx(1e-3 * 0.5)
    assert groups["block0.decay"]["lr"] == pytest.approx(1e-3 * 0.25)
    assert groups["embeddings.decay"]["lr"] == pytest.approx(1e-3 * 0.125)
    assert groups["block0.no_decay"]["weight_decay"] == 0.0 and groups["block0.decay"]["weight_decay"] == 0.01
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == len(list(module.model.parameters()))
    layer0 = set(map(id, module.model.bert.encoder.layer[0].parameters()))
    assert layer0 == {id(p) for name in ("block0.decay", "block0.no_decay") for p in groups[name]["params"]}


def test_gradual_unfreezing_opens_one_block_per_epoch_top_down(mr_tiny, tiny_backbone):
    from tunelab.callbacks.unfreeze import GradualUnfreezing

    task, data = mr_tiny
    module = TuneModule(tiny_backbone, task, optimizer=partial(torch.optim.AdamW, lr=1e-2))
    snapshots = []

    class Snapshot(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            snapshots.append({n: p.detach().clone() for n, p in pl_module.model.named_parameters()})

    start = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    train_steps(module, data, steps=-1, max_epochs=3, callbacks=[GradualUnfreezing(), Snapshot()])

    def moved(a, b, part):
        return any(not torch.equal(a[n], b[n]) for n in a if part in n)

    epoch0, epoch1, epoch2 = snapshots
    assert moved(start, epoch0, "classifier") and not moved(start, epoch0, "encoder.layer.")
    assert moved(epoch0, epoch1, "encoder.layer.1.") and not moved(epoch0, epoch1, "encoder.layer.0.")
    assert moved(epoch1, epoch2, "encoder.layer.0.") and not moved(start, epoch2, "embeddings")


def test_fgm_and_pgd_train_on_a_worse_point_and_leave_no_hook(mr_tiny, tiny_backbone):
    task, data = mr_tiny
    module = TuneModule(tiny_backbone, task).eval()  # no dropout: the two forwards differ only by the perturbation
    batch = next(iter(data.train_dataloader()))

    def compute_loss():
        return task.loss(task.forward(module.model, batch), batch)

    clean = compute_loss().item()
    embeddings = module.model.get_input_embeddings()
    for adversary in (EmbeddingAdversary(epsilon=5.0), EmbeddingAdversary(epsilon=5.0, steps=3)):
        total = adversary.training_loss(module.model, compute_loss).item()
        assert total - clean > clean  # clean + adversarial, and the adversarial loss is the higher one
        assert not embeddings._forward_hooks
    assert compute_loss().item() == pytest.approx(clean)
