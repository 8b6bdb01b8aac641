"""Callbacks that keep a run's work safe: a finite-loss guard, preemption saves, exact resume.

    LastCheckpoint         last.ckpt at every epoch end (and every N steps if asked), whatever the
                           monitored metric does; never a state whose validation loss is NaN/inf
    FiniteLossGuard        stop at the first NaN/inf loss, naming the step, before the bad update
    PreemptionCheckpoint   SIGTERM / SIGUSR1 (what SLURM sends before it kills a job): save last.ckpt,
                           then stop; under SLURM, Lightning's own handler saves and requeues

All are plain Lightning callbacks (no Hydra needed); conf/callbacks/default.yaml turns them on.
"""

from __future__ import annotations

import math
import os
import signal

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from tunelab.errors import TunelabError


def _last_checkpoint_path(trainer) -> str | None:
    """Where this run keeps last.ckpt: the LastCheckpoint callback's file, else next to the best one."""
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint):
            return callback.path
    callback = best_checkpoint_callback(trainer)
    if callback is not None and callback.dirpath:
        return os.path.join(callback.dirpath, callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION)
    return None


def best_checkpoint_callback(trainer):
    """The ModelCheckpoint that keeps the best checkpoint by task.metric (trainer.checkpoint_callback
    would be whichever Checkpoint comes first, LastCheckpoint included)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


class LastCheckpoint(Checkpoint):
    """Write ``<dirpath>/last.ckpt`` at every training epoch end and, if asked, every N optimizer steps.

    Lightning 2.6's ``ModelCheckpoint(save_last=True)`` rewrites last.ckpt only when it saves a top-k
    checkpoint, i.e. when the monitored metric improves: a run whose validation stalls would resume
    from epochs back. This one saves whatever the metric does. It does not overwrite last.ckpt with
    a state whose validation loss is NaN/inf, so after a divergence last.ckpt is the last state that
    validated finite (the step saves check that the weights are finite).

    It is a ``Checkpoint`` so that Lightning runs it after the other checkpoint callbacks (and after
    EarlyStopping) at an epoch end: the file then holds the best-model and early-stopping state of that
    epoch, and a resumed run chooses its best checkpoint as an uninterrupted one would.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None):
        if every_n_train_steps is not None and int(every_n_train_steps) < 1:
            raise TunelabError(
                f"callbacks.last_checkpoint.every_n_train_steps must be >= 1 or null, got {every_n_train_steps}."
            )
        self.dirpath = str(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.saved_step: int | None = None
        self.skipped: str | None = None  # why the last save was skipped (a divergence)

    @property
    def path(self) -> str:
        return os.path.join(self.dirpath, "last.ckpt")

    def on_train_epoch_end(self, trainer, pl_module):
        # runs after the epoch's validation, ModelCheckpoint and EarlyStopping: their state is in the file
        val_loss = trainer.callback_metrics.get("val/loss")
        if val_loss is not None and not torch.isfinite(val_loss).all():
            self.skipped = f"val/loss is {float(val_loss)} after epoch {trainer.current_epoch}"
            return
        self._save(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and trainer.global_step != self.saved_step:
            if all(torch.isfinite(p).all() for p in pl_module.parameters() if p.requires_grad):
                self._save(trainer)

    def _save(self, trainer):
        if trainer.fast_dev_run or trainer.sanity_checking:  # as ModelCheckpoint: a smoke test saves nothing
            return
        trainer.save_checkpoint(self.path)
        self.saved_step = trainer.global_step
        self.skipped = None


class FiniteLossGuard(L.Callback):
    """Raise a clear error when the training loss is NaN or inf.

    The check runs before backward, so the optimizer never applies the bad update and last.ckpt
    (written at the previous epoch end) stays the last good state to resume from.
    """

    def on_before_backward(self, trainer, pl_module, loss):
        value = float(loss.detach())
        if math.isfinite(value):
            return
        raise TunelabError(
            f"The training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}). {_last_good_checkpoint(trainer)}\n"
            "Lower optimizer.lr, keep trainer.gradient_clip_val > 0, use precision=32-true, or look for "
            "broken rows in the data."
        )


def _last_good_checkpoint(trainer) -> str:
    """Name the checkpoint to resume from after a divergence, with the step it holds."""
    last = _last_checkpoint_path(trainer)
    if not (last and os.path.exists(last)):
        return "No checkpoint had been written yet: start again with a lower optimizer.lr."
    step = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("global_step")
    skipped = next(
        (
            f" (not overwritten since: {c.skipped})"
            for c in trainer.callbacks
            if isinstance(c, LastCheckpoint) and c.skipped
        ),
        "",
    )
    return (
        f"The last good checkpoint is {last}, at step {step}{skipped}; resume from it with ckpt_path=last "
        "and a lower optimizer.lr (the resumed run uses the new value)."
    )


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM or SIGUSR1, save ``last.ckpt`` after the current batch and stop the run.

    Lightning turns SIGTERM into a ``SIGTERMException`` at the next batch boundary; SIGUSR1 (which
    SLURM sends with ``--signal=USR1@90``) is handled here the same way. Under SLURM with
    auto-requeue, Lightning itself handles SIGUSR1 (saves ``hpc_ckpt_N.ckpt`` and runs
    ``scontrol requeue``), and this callback leaves that signal alone.
    """

    def __init__(self):
        self.signal_received: str | None = None
        self.saved: str | None = None
        self._previous = None

    def _on_sigusr1(self, signum, frame):
        self.signal_received = "SIGUSR1"

    def on_train_start(self, trainer, pl_module):
        # not on_fit_start: Lightning registers its handlers after that hook, and remembers
        # whatever it finds as the handler to restore at the end
        from lightning.pytorch.trainer.connectors.signal_connector import (
            _HandlersCompose,
        )

        # Lightning's SLURM auto-requeue handler is in place only when nothing else held SIGUSR1 (a bare
        # SLURM job); under submitit, submitit's handler held it and this callback saves first, then
        # tunelab.sweeps.slurm hands over to submitit, which requeues
        slurm_requeue = hasattr(signal, "SIGUSR1") and isinstance(signal.getsignal(signal.SIGUSR1), _HandlersCompose)
        if not slurm_requeue and hasattr(signal, "SIGUSR1"):
            try:
                self._previous = signal.signal(signal.SIGUSR1, self._on_sigusr1)
            except ValueError:  # not the main thread: leave signals to the caller
                self._previous = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.signal_received:
            self._save(trainer)
            raise PreemptedError(self.signal_received, self.saved)

    def on_exception(self, trainer, pl_module, exception):
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and not self.saved:
            self.signal_received = "SIGTERM"
            self._save(trainer)
        self._restore_handler()

    def _save(self, trainer):
        path = _last_checkpoint_path(trainer) or os.path.join(trainer.default_root_dir, "checkpoints", "last.ckpt")
        trainer.save_checkpoint(path)
        self.saved = path

    def teardown(self, trainer, pl_module, stage):
        self._restore_handler()

    def _restore_handler(self):
        # Lightning leaves a signal alone when a handler is already set: never leave ours behind
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None


class PreemptedError(TunelabError):
    """The run was stopped by a signal after saving its state."""

    def __init__(self, signal_name: str, saved: str | None):
        self.signal_name, self.saved = signal_name, saved
        super().__init__(
            f"Received {signal_name}: stopped after saving {saved}. "
            "Resume with the same command plus ckpt_path=last (and the same hydra.run.dir)."
        )

    def __reduce__(self):  # joblib workers pickle it back to the parent: rebuild from the two fields
        return type(self), (self.signal_name, self.saved)
