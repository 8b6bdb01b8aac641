"""``trainer=fsdp``'s strategy: Lightning's ModelParallelStrategy (FSDP2), holding optimizers only to fit.

Lightning 2.6's ModelParallelStrategy keeps the optimizers of ``fit`` through a later ``test`` or
``predict``, and its ``load_checkpoint`` asks the checkpoint for the state of every optimizer it holds,
whatever the stage. best.ckpt is saved without optimizer state (``save_weights_only``), so testing it
after fit failed. Its FSDPStrategy (FSDP1) loads optimizer state only while fitting; this one does the
same: outside fit it holds no optimizers, and a checkpoint is loaded for its weights.
"""

from __future__ import annotations

from lightning.pytorch.strategies import ModelParallelStrategy as LightningModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn


class ModelParallelStrategy(LightningModelParallelStrategy):
    def setup(self, trainer) -> None:
        if trainer.state.fn != TrainerFn.FITTING:  # test/predict after fit: fit's optimizers are done with
            self._reset_optimizers_and_schedulers()
        super().setup(trainer)
