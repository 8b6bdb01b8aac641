"""Adversarial training on the input embeddings: FGM (one step) and PGD (several steps).

The perturbation is added to the output of the model's input-embedding layer through a forward
hook, so it works for every head and under PEFT (the embedding layer itself need not train).
Each training step: the clean loss, its gradient with respect to the embeddings, ``steps``
ascent steps of size ``alpha`` projected onto an L2 ball of radius ``epsilon`` per example, and
the loss at the perturbed embeddings. The step trains on ``clean + weight * adversarial``
(Miyato et al. 2017; Madry et al. 2018; Zhu et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from tunelab.errors import TunelabError
from tunelab.tuning import parts


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


class EmbeddingAdversary:
    def __init__(self, epsilon: float = 0.1, steps: int = 1, alpha: float | None = None, weight: float = 1.0):
        if epsilon <= 0 or not isinstance(steps, int) or steps < 1 or weight < 0:
            raise TunelabError(
                f"model.adversarial: need epsilon > 0, steps >= 1 (an integer) and weight >= 0; "
                f"got epsilon={epsilon}, steps={steps}, weight={weight}."
            )
        self.epsilon, self.steps, self.weight = epsilon, steps, weight
        self.alpha = alpha if alpha is not None else epsilon / steps
        self.delta: torch.Tensor | None = None
        self.probe = False  # next forward: create a zero perturbation whose gradient we read

    @contextmanager
    def _hooked(self, model: nn.Module):
        try:
            layer = parts.unwrap(model).get_input_embeddings()
        except (AttributeError, NotImplementedError):
            layer = None
        if layer is None:
            raise TunelabError(
                f"model.adversarial needs the input-embedding layer, but {type(model).__name__} "
                "has no get_input_embeddings(). Set adversarial=none for this model."
            )

        def add_delta(module, inputs, output):
            if self.probe:
                self.delta = torch.zeros_like(output, requires_grad=True)
            return output + self.delta if self.delta is not None else output

        handle = layer.register_forward_hook(add_delta)
        try:
            yield
        finally:
            handle.remove()
            self.delta, self.probe = None, False

    def _forward(self, compute_loss: Callable[[], torch.Tensor], delta: torch.Tensor | None, probe: bool):
        self.delta, self.probe = delta, probe
        loss = compute_loss()
        self.probe = False
        return loss

    def training_loss(self, model: nn.Module, compute_loss: Callable[[], torch.Tensor]) -> torch.Tensor:
        with self._hooked(model):
            clean = self._forward(compute_loss, None, probe=True)
            grad_at = self.delta
            (grad,) = torch.autograd.grad(clean, grad_at, retain_graph=True)
            delta = torch.zeros_like(grad)
            for step in range(self.steps):
                delta = delta + self.alpha * grad / _per_example_norm(grad)
                delta = delta * (self.epsilon / _per_example_norm(delta)).clamp(max=1.0)  # project onto the ball
                if step < self.steps - 1:
                    probe = delta.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(self._forward(compute_loss, probe, False), probe)
            adversarial = self._forward(compute_loss, delta.detach(), probe=False)
        return clean + self.weight * adversarial

    def __repr__(self) -> str:
        return (
            f"EmbeddingAdversary(epsilon={self.epsilon}, steps={self.steps}, alpha={self.alpha}, weight={self.weight})"
        )
