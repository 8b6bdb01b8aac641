"""Callbacks that keep a run's work safe: a finite-loss guard, preemption saves, exact resume.

    FiniteLossGuard        stop at the first NaN/inf loss, naming the step, before the bad update
    PreemptionCheckpoint   SIGTERM / SIGUSR1 (what SLURM sends before it kills a job): save last.ckpt,
                           then stop; under SLURM, Lightning's own handler saves and requeues
    RandomState            the RNG states travel in checkpoints, so a resumed run draws the same
                           dropout masks as an uninterrupted one

All three are plain Lightning callbacks (no Hydra needed); conf/callbacks/default.yaml turns them on.
"""

from __future__ import annotations

import math
import os
import random
import signal

import lightning as L
import numpy as np
import torch

from tunelab.errors import TunelabError


def _last_checkpoint_path(trainer) -> str | None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return os.path.join(callback.dirpath, callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION)
    return None


class FiniteLossGuard(L.Callback):
    """Raise a clear error when the training loss is NaN or inf.

    The check runs before backward, so the optimizer never applies the bad update and last.ckpt
    (written at the previous epoch end) stays the last good state to resume from.
    """

    def on_before_backward(self, trainer, pl_module, loss):
        value = float(loss.detach())
        if math.isfinite(value):
            return
        last = _last_checkpoint_path(trainer)
        kept = (f"The last good checkpoint is {last}; resume from it with ckpt_path=last."
                if last and os.path.exists(last) else "No checkpoint had been written yet.")
        raise TunelabError(
            f"The training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}). {kept}\n"
            "Lower optimizer.lr, keep trainer.gradient_clip_val > 0, use precision=32-true, or look for "
            "broken rows in the data."
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
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = trainer._accelerator_connector.cluster_environment
        slurm_requeue = isinstance(env, SLURMEnvironment) and env.auto_requeue
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


class RandomState(L.Callback):
    """Saves the torch / numpy / python RNG states in each checkpoint and restores them on resume.

    Lightning does not do this itself; without it a resumed run's dropout masks differ from an
    uninterrupted run's, and so do its final metrics. States are plain lists and tensors so that
    checkpoints load with ``torch.load(weights_only=True)``.
    """

    def state_dict(self):
        np_state = np.random.get_state()
        return {"torch": torch.get_rng_state(),
                "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "python": _to_lists(random.getstate())}

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(_to_tuples(state["python"]))


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
