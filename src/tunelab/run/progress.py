"""Progress that a log file can hold: plain lines when stdout is not a terminal.

Rich's progress bar redraws one terminal line; under SLURM, ``nohup`` or any redirected output it
writes nothing readable until the run ends. ``progress_bar()`` (conf/callbacks/default.yaml) keeps
the Rich bar on a terminal and otherwise returns ``PlainProgress``: one line after the first and every
``every_n_steps``-th optimizer step (step, epoch, loss, samples/s, ETA) and one after each validation with its metrics.
It is a Lightning ``ProgressBar``, so Lightning adds no tqdm bar of its own.
"""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress(ProgressBar):
    def __init__(self, every_n_steps: int = 50, stream=None):
        super().__init__()
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            from tunelab.errors import TunelabError

            raise TunelabError(
                f"callbacks.progress_bar.every_n_steps must be a positive integer, got {every_n_steps!r}."
            )
        self.every_n_steps = every_n_steps
        self.stream = stream
        self._enabled = True
        self._started = None
        self._samples = 0
        self._last_step = -1

    # ProgressBar's interface (Lightning calls these for sanity checks and `enable_progress_bar`)
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer, line: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(line, file=self.stream or sys.stdout, flush=True)

    def on_train_start(self, trainer, pl_module):
        self._started, self._samples = time.perf_counter(), 0
        self._start_step = trainer.global_step  # a resumed run counts its speed from here

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        self._samples += int(ids.shape[0]) if ids is not None else 0
        step = trainer.global_step
        # one line per optimizer step (accumulation); the first step too: a short run still says its speed and ETA
        if step == self._last_step or (step % self.every_n_steps and step != self._start_step + 1):
            return
        self._last_step = step
        elapsed = time.perf_counter() - self._started
        total = trainer.estimated_stepping_batches
        done = step - self._start_step
        eta = (total - step) * elapsed / done if done > 0 and total and total != float("inf") else None
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        parts = [
            f"step {step}/{total if total != float('inf') else '?'}",
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs if trainer.max_epochs not in (None, -1) else '?'}",
            f"loss {float(loss):.4f}" if loss is not None else "loss ?",
            f"{self._samples / elapsed:.1f} samples/s" if elapsed > 0 else "",
            f"ETA {_duration(eta)}" if eta is not None else "",
        ]
        self._print(trainer, "train: " + "  ".join(p for p in parts if p))

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
        self._print(trainer, f"validation: epoch {trainer.current_epoch + 1} step {trainer.global_step}  {metrics}")


def progress_bar(every_n_steps: int = 50, stream=None):
    """Rich's bar on a terminal; plain lines every ``every_n_steps`` steps when stdout is redirected."""
    out = stream or sys.stdout
    if getattr(out, "isatty", lambda: False)():
        return RichProgressBar()
    return PlainProgress(every_n_steps=every_n_steps, stream=stream)
