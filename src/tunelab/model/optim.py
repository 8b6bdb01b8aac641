"""Parameter groups, the optimizer built from them, and learning-rate schedules.

The optimizer config is a ``_partial_`` (e.g. ``torch.optim.AdamW`` with lr and weight decay);
``build_optimizer`` calls it with the groups below and then reads the rate and decay it was given from
``optimizer.defaults`` (where every torch optimizer keeps them): groups flagged ``decay=False`` get no
weight decay, and each group's lr is ``lr_scale`` times the base rate (layer decay: tunelab/tuning/
layer_decay.py). The scheduler config is a ``_partial_`` of one of the schedules here (transformers'
warm-up schedules), called with the optimizer and the total number of optimizer steps.

``default_optimizer()`` / ``default_scheduler()`` are what ``tunelab train`` builds with no override
(conf/train.yaml's defaults): ``TuneModule``'s plain-Python defaults are these same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR

from tunelab.errors import TunelabError


def _no_decay(name: str, param: torch.Tensor) -> bool:
    # Biases and normalisation weights are not decayed (BERT recipe); 1-d tensors cover both.
    lowered = name.lower()
    return param.ndim < 2 or "norm" in lowered or lowered.endswith(".bias")


def param_groups(model: torch.nn.Module) -> list[dict]:
    """Two groups of trainable parameters: decayed, and not decayed (biases, LayerNorm), both at the base lr."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if _no_decay(name, param) else decay).append(param)
    groups = [
        {"params": decay, "decay": True, "lr_scale": 1.0, "name": "decay"},
        {"params": no_decay, "decay": False, "lr_scale": 1.0, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(factory: Callable, groups: list[dict], **overrides) -> torch.optim.Optimizer:
    """``factory(groups, **overrides)``, then each group's own lr and weight decay from the optimizer's
    defaults: ``lr * lr_scale``, and no decay where ``decay`` is False."""
    optimizer = factory(groups, **overrides)
    base_lr = optimizer.defaults.get("lr")
    for group in optimizer.param_groups:
        if group.get("lr_scale", 1.0) != 1.0:
            if base_lr is None:
                raise TunelabError(f"{type(optimizer).__name__} has no lr to scale per layer (model.layer_decay).")
            group["lr"] = base_lr * group["lr_scale"]
        if not group.get("decay", True) and "weight_decay" in group:
            group["weight_decay"] = 0.0
    return optimizer


def default_optimizer():
    """``tunelab train``'s optimizer with no override, as code (conf/optimizer/adamw.yaml: fused AdamW,
    lr 5e-5, weight decay 0.01). tests/commands/test_train.py pins the two equal."""
    return partial(torch.optim.AdamW, lr=5e-5, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8, fused=True)


def default_scheduler():
    """``tunelab train``'s schedule with no override (conf/scheduler/linear.yaml: 10% linear warm-up, then
    linear decay to 0)."""
    return partial(linear_with_warmup, warmup=0.1)


def _warmup_steps(warmup: float | int, total: int) -> int:
    if warmup < 0:
        raise TunelabError(f"scheduler.warmup must be >= 0, got {warmup}.")
    return int(warmup * total) if isinstance(warmup, float) and warmup < 1 else int(warmup)


# transformers' schedules: during warm-up step s trains at s / warm of the base rate (step 0 at 0), then
# the decay; ``warmup`` < 1 is a fraction of all steps, else a step count.
def linear_with_warmup(optimizer, num_training_steps: int, warmup: float | int = 0.1) -> LambdaLR:
    """Linear warm-up to the base LR, then linear decay to 0."""
    from transformers import get_linear_schedule_with_warmup

    warm = _warmup_steps(warmup, num_training_steps)
    return get_linear_schedule_with_warmup(optimizer, warm, num_training_steps)


def cosine_with_warmup(
    optimizer, num_training_steps: int, warmup: float | int = 0.1, min_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up, then a half cosine down to ``min_ratio`` of the base LR."""
    from transformers import get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

    warm = _warmup_steps(warmup, num_training_steps)
    if not min_ratio:
        return get_cosine_schedule_with_warmup(optimizer, warm, num_training_steps)
    return get_cosine_with_min_lr_schedule_with_warmup(optimizer, warm, num_training_steps, min_lr_rate=min_ratio)


def constant(optimizer, num_training_steps: int, warmup: float | int = 0) -> LambdaLR:
    """Linear warm-up (none by default), then the base LR."""
    from transformers import get_constant_schedule_with_warmup

    return get_constant_schedule_with_warmup(optimizer, _warmup_steps(warmup, num_training_steps))
