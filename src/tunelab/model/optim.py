"""Parameter groups and learning-rate schedules.

The optimizer config is a ``_partial_`` (e.g. ``torch.optim.AdamW`` with lr and weight decay);
``TuneModule`` calls it with the groups below. The scheduler config is a ``_partial_`` of one of
the schedule functions here, called with the optimizer and the total number of optimizer steps.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from tunelab.errors import TunelabError


def _no_decay(name: str, param: torch.Tensor) -> bool:
    # Biases and normalisation weights are not decayed (BERT recipe); 1-d tensors cover both.
    lowered = name.lower()
    return param.ndim < 2 or "norm" in lowered or lowered.endswith(".bias")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two groups of trainable parameters: decayed, and not decayed (biases, LayerNorm)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if _no_decay(name, param) else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def _warmup_steps(warmup: float | int, total: int) -> int:
    if warmup < 0:
        raise TunelabError(f"scheduler.warmup must be >= 0, got {warmup}.")
    return int(warmup * total) if isinstance(warmup, float) and warmup < 1 else int(warmup)


def linear_with_warmup(optimizer, num_training_steps: int, warmup: float | int = 0.1) -> LambdaLR:
    """Linear warm-up to the base LR, then linear decay to 0. ``warmup`` < 1 is a fraction of steps."""
    warm = _warmup_steps(warmup, num_training_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        return max(0.0, (num_training_steps - step) / max(1, num_training_steps - warm))

    return LambdaLR(optimizer, factor)


def cosine_with_warmup(
    optimizer, num_training_steps: int, warmup: float | int = 0.1, min_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up, then a half cosine down to ``min_ratio`` of the base LR."""
    warm = _warmup_steps(warmup, num_training_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        progress = min(1.0, (step - warm) / max(1, num_training_steps - warm))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def constant(optimizer, num_training_steps: int, warmup: float | int = 0) -> LambdaLR:
    warm = _warmup_steps(warmup, num_training_steps)
    return LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, warm)) if warm else 1.0)
