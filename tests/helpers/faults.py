"""Callbacks that inject faults into a training run (used by tests/test_reliability_*.py).

They are loaded by Hydra from the test folder (``+callbacks.fault._target_=helpers.faults.X``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L


class PauseAt(L.Callback):
    """At (epoch, batch), write ``marker`` (the process id) and wait there to be killed from outside."""

    def __init__(self, marker: str, epoch: int, batch: int, seconds: float = 300):
        self.marker, self.epoch, self.batch, self.seconds = Path(marker), epoch, batch, seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.marker.write_text(str(os.getpid()))
            time.sleep(self.seconds)


class SignalAt(L.Callback):
    """Send ``signum`` to this process at (epoch, batch), as a scheduler would."""

    def __init__(self, signum: str, epoch: int, batch: int):
        self.signum, self.epoch, self.batch = getattr(signal, signum), epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


class PoisonLossAt(L.Callback):
    """Make the loss NaN from global step ``step`` on (a diverging run, without waiting for one)."""

    def __init__(self, step: int):
        self.step = step

    def on_fit_start(self, trainer, pl_module):
        original = pl_module.task.loss

        def loss(outputs, batch):
            value = original(outputs, batch)
            poisoned = pl_module.training and trainer.global_step >= self.step
            return value * float("nan") if poisoned else value

        pl_module.task.loss = loss
