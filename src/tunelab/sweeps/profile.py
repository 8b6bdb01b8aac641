"""The profile behind ``tunelab estimate``: one shape's first job, run for real on a few batches per split.

Every batch is timed with its padded tokens (a callback added by an override), every checkpoint save
too; what else the short run spent is the shape's fixed cost (tunelab/sweeps/estimate.py uses it).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np

from tunelab.errors import TunelabError

PROFILE_TRAIN_BATCHES, PROFILE_EVAL_BATCHES = 6, 3


def compose_job(overrides: list[str], extra: tuple[str, ...] = ()):
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=[*overrides, *extra])


def _step_timer_class():
    """A Lightning callback (added by an override to the profile run): each batch's seconds and padded
    tokens, each checkpoint save's seconds. Built on first use, so importing this module stays light."""
    import lightning as L

    class StepTimer(L.Callback):
        current = None

        def __init__(self):
            self.train, self.eval, self.saves, self._start = [], [], [], None
            self.stages: dict[str, list[int]] = {}  # sanity / val / test / predict: each eval batch's tokens
            self.first_step_end = self.fit_end = None  # perf_counter() after the first train batch, after fit
            StepTimer.current = self

        def setup(self, trainer, pl_module, stage):
            if getattr(trainer, "_estimate_timed", False):
                return
            original = trainer.save_checkpoint

            def timed(*args, **kwargs):
                started = time.perf_counter()
                original(*args, **kwargs)
                self.saves.append(time.perf_counter() - started)

            trainer.save_checkpoint, trainer._estimate_timed = timed, True

        def _begin(self, batch):
            self._start = (time.perf_counter(), int(batch["input_ids"].numel()))

        def _end(self, into):
            started, tokens = self._start
            into.append((tokens, time.perf_counter() - started))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._begin(batch)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._end(self.train)
            self.first_step_end = self.first_step_end or time.perf_counter()

        def on_fit_end(self, trainer, pl_module):
            self.fit_end = time.perf_counter()

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            self._begin(batch)

        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            self._end(self.eval)
            stage = "sanity" if trainer.sanity_checking else trainer.state.stage.value
            self.stages.setdefault("val" if stage == "validate" else stage, []).append(self.eval[-1][0])

        on_test_batch_start = on_predict_batch_start = on_validation_batch_start
        on_test_batch_end = on_predict_batch_end = on_validation_batch_end

    StepTimer.__qualname__ = "StepTimer"  # picklable by name
    return StepTimer


_CLASSES: dict = {}


def __getattr__(name: str):
    if name == "StepTimer":  # Hydra's _target_ looks the class up by name
        return _CLASSES.setdefault(name, _step_timer_class())
    raise AttributeError(name)


def _fit(points: list[tuple[int, float]]):
    """Seconds per batch as a + b * tokens (least squares; through the origin when the lengths do not vary)."""
    x, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    if len(points) >= 3 and np.ptp(x) > 0.2 * x.mean():
        b, a = np.polyfit(x, y, 1)
        if a >= 0 and b >= 0:
            return lambda tokens: a + b * np.asarray(tokens, float)
    rate = y.sum() / x.sum()
    return lambda tokens: rate * np.asarray(tokens, float)


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets the peak RSS (VmHWM) to the current RSS


def _peak_memory_mb(fallback: float | None) -> float | None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return fallback


@contextlib.contextmanager
def _quiet_loggers():
    """The profile run's Lightning/transformers messages are the short run's, not the user's: hidden."""
    import logging

    loggers = [
        logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def profile(overrides: list[str], workdir: Path) -> dict:
    """The shape's first job, run for real on a few batches of every split."""
    from tunelab.commands.train import train

    out = workdir / f"profile-{len(list(workdir.iterdir()))}"
    cfg = compose_job(
        overrides,
        (
            f"paths.output_dir={out}",
            f"++trainer.limit_train_batches={PROFILE_TRAIN_BATCHES}",
            f"++trainer.limit_val_batches={PROFILE_EVAL_BATCHES}",
            f"++trainer.limit_test_batches={PROFILE_EVAL_BATCHES}",
            f"++trainer.limit_predict_batches={PROFILE_EVAL_BATCHES}",
            "trainer.max_epochs=1",
            "trainer.max_steps=-1",
            "++trainer.val_check_interval=1.0",
            "+callbacks.estimate_timer._target_=tunelab.sweeps.profile.StepTimer",
            "print_config=false",
        ),
    )
    devices = cfg.trainer.get("devices", 1)
    if str(devices) not in ("1", "[0]") or cfg.trainer.get("num_nodes", 1) != 1:
        # Lightning would start the other ranks by re-running this command line: `tunelab estimate` itself
        raise TunelabError(
            f"tunelab estimate profiles one process; this sweep's jobs run on trainer.devices={devices}. "
            "Estimate with trainer=cpu (or trainer.devices=1) and divide the train time by the devices."
        )
    _reset_peak_memory()
    log = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _quiet_loggers():
        train(cfg)
    ended = time.perf_counter()
    wall = ended - started
    timer = _CLASSES["StepTimer"].current
    summary = json.loads((out / "metrics.json").read_text())
    checkpoints = (
        sum(p.stat().st_size for p in (out / "checkpoints").rglob("*") if p.is_file())
        if (out / "checkpoints").exists()
        else 0
    )
    train_fit, eval_fit = _fit(timer.train[1:] or timer.train), _fit(timer.eval[1:] or timer.eval)
    return {
        "train": train_fit,
        "eval": eval_fit,
        "save": float(np.mean(timer.saves)) if timer.saves else 0.0,
        **fixed_costs(timer, started, ended, train_fit, eval_fit),
        "peak_mb": _peak_memory_mb(summary.get("peak_memory_mb")),
        "checkpoint_mb": checkpoints / 2**20,
        "profile_seconds": wall,
    }


def fixed_costs(timer, started: float, ended: float, train_fit, eval_fit) -> dict:
    """The profile run's seconds that the per-batch fits do not explain, in three parts:

    - ``before_first_step``: from the job's start to the end of its first training batch (config, model
      load, data set-up and tokenization, Lightning's set-up, the first step's warm-up), less what the fits
      give the first batch and the sanity-check batches (planned as batches);
    - ``per_validation``: the rest of fit beyond its fitted batches and checkpoint saves (loop, iterator
      and metric overhead), for the profile's one validation pass: charged per planned pass;
    - ``after_fit``: from the end of fit to the job's end (test and prediction set-up, best-checkpoint
      reloads, the raw test split, metrics.json), less the fitted test and prediction batches.
    Each is what a job pays however few rows it has; ``fixed`` is their sum with the profile's saves."""

    def fitted(fit, tokens) -> float:
        return float(np.sum(fit(tokens))) if tokens else 0.0

    tokens = [t for t, _ in timer.train]
    stages = timer.stages
    first_end = timer.first_step_end or timer.fit_end or ended
    fit_end = timer.fit_end or ended
    before = first_end - started - fitted(train_fit, tokens[:1]) - fitted(eval_fit, stages.get("sanity", []))
    during = fit_end - first_end - fitted(train_fit, tokens[1:]) - fitted(eval_fit, stages.get("val", []))
    during -= sum(timer.saves)
    after = ended - fit_end - fitted(eval_fit, stages.get("test", []) + stages.get("predict", []))
    parts = {"before_first_step": max(0.0, before), "per_validation": max(0.0, during), "after_fit": max(0.0, after)}
    return {**parts, "fixed": sum(parts.values()) + sum(timer.saves)}
