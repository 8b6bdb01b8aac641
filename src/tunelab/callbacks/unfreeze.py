"""Gradual unfreezing (ULMFiT, Howard & Ruder 2018) as a Lightning callback.

Epoch 0 trains the head (plus the top ``start_blocks`` blocks); each later epoch unfreezes
``blocks_per_epoch`` more blocks, top down, and the embeddings last. Only parameters that were
trainable when fitting started are managed, so it composes with ``model.freeze`` and PEFT.
The optimizer was built over all of them before this freezes any: a parameter without a gradient
is skipped by the optimizer (no update, no weight decay) until it is unfrozen.

    tunelab train callbacks=gradual_unfreezing
"""

from __future__ import annotations

import lightning as L

from tunelab.errors import TunelabError
from tunelab.tuning import parts


class GradualUnfreezing(L.Callback):
    def __init__(self, blocks_per_epoch: int = 1, start_blocks: int = 0):
        if blocks_per_epoch < 1 or start_blocks < 0:
            raise TunelabError(
                f"callbacks.gradual_unfreezing: blocks_per_epoch must be >= 1 and start_blocks >= 0, "
                f"got {blocks_per_epoch} and {start_blocks}."
            )
        self.blocks_per_epoch = blocks_per_epoch
        self.start_blocks = start_blocks
        self.stages: list[list] = []

    def on_fit_start(self, trainer, pl_module):
        model = pl_module.model
        top_down = [list(m.parameters()) for _, m in reversed(parts.require_blocks(model, "Gradual unfreezing"))]
        top_down.append([p for _, m in parts.embeddings(model) for p in m.parameters()])
        self.stages = [[p for p in stage if p.requires_grad] for stage in top_down]
        self._set(trainer.current_epoch)

    def on_train_epoch_start(self, trainer, pl_module):
        self._set(trainer.current_epoch)

    def unfrozen_stages(self, epoch: int) -> int:
        return min(len(self.stages), self.start_blocks + epoch * self.blocks_per_epoch)

    def _set(self, epoch: int) -> None:
        open_ = self.unfrozen_stages(epoch)
        for i, stage in enumerate(self.stages):
            for param in stage:
                param.requires_grad_(i < open_)
