"""What every option of the ``peft`` config group is: something that decides what trains.

``TuneModule`` calls ``apply(model)`` once, right after ``task.build_model``, and uses the model it
returns (a PEFT-wrapped model still answers ``model(**inputs).logits``). The hooks let a method
follow training (AdaLoRA's rank budget); ``merged``/``save_adapter`` serve ``tunelab export``.
"""

from __future__ import annotations

from torch import nn

from tunelab.errors import TunelabError
from tunelab.tuning import parts


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)


def keep_head_trainable(model: nn.Module) -> list[str]:
    base = parts.unwrap(model)
    names = parts.head_names(base)
    for name in names:
        set_trainable(getattr(base, name), True)
    return names


class TuningMethod:
    """Full fine-tuning: everything trains. Subclasses freeze or add parameters."""

    name = "none"  # the peft option: nothing added, nothing frozen
    #: whether the run trains an adapter that ``tunelab export --adapter`` can write alone
    has_adapter = False

    def apply(self, model: nn.Module) -> nn.Module:
        return model

    def on_fit_start(self, model: nn.Module, total_steps: int) -> None:
        """Called once before the first step with the number of optimizer steps."""

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Called after every training batch (its optimizer step done, its gradients still held)."""

    def merged(self, model: nn.Module) -> nn.Module:
        """A plain transformers model with the same outputs (adapters folded into the weights)."""
        return model

    def save_adapter(self, model: nn.Module, folder) -> None:
        raise TunelabError(
            f"This run used peft={self.name}, which trains no adapter: there is nothing to export "
            "alone. Export the full model with `tunelab export RUN --out DIR --merged`."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
