"""``tunelab train``: compose the config, build the pieces, fit, test, write metrics.json.

The whole path from the command to the optimizer step, in order:
  config (Hydra) -> task -> data module (tokenize, learn labels) -> TuneModule (backbone + head,
  optimizer, schedule) -> callbacks, loggers -> lightning.Trainer.fit -> test (best checkpoint)
  -> <run>/metrics.json
What a run does around that (resume skip, DDP ranks, preflight checks, run.json, SIGTERM, keep_last)
is ``tunelab.run.job``'s; what it writes is ``tunelab.run.record``'s.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

from tunelab.commands.parts import build
from tunelab.config import config_dir, instantiate, instantiate_each
from tunelab.run import distributed, preflight, resume
from tunelab.run.job import job
from tunelab.run.loggers import one_wandb_run_per_job
from tunelab.run.record import RunRecord


@job
def train(cfg, record: RunRecord) -> dict:
    """Run one experiment from a composed config; returns the final metrics. Called as ``train(cfg)``."""
    # imported here, not at the top: Lightning must come after Hydra's logging set-up
    import lightning as L

    from tunelab.run import test_predictions  # per test row: what compare's per-example tests pair

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = build(cfg)
    record.built(parts)
    ckpt_path = resume.checkpoint_to_resume(cfg, record.run_dir, parts.task, parts.module)

    trainer = instantiate(
        cfg.trainer, "trainer", callbacks=_callbacks(cfg), logger=instantiate_each(cfg.get("logger")) or False
    )
    record.attach(trainer, cfg)
    started = time.perf_counter()
    trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - started
    record.fitted(trainer)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    best = _best_checkpoint(trainer)  # None without checkpointing: the test runs on the final weights
    if cfg.get("test", True):
        results = trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=best, verbose=False)
        metrics.update({k: float(v) for k, v in results[0].items()})
        test_predictions.write(trainer, parts.module, parts.datamodule, best, record.run_dir)
    record.finish(trainer, parts, cfg, fit_seconds, metrics)
    return metrics


def _callbacks(cfg) -> list:
    """The configured callbacks; under ``trainer.enable_checkpointing=false`` without the checkpoint writers
    (best.ckpt, last.ckpt), which Lightning refuses to run alongside that setting."""
    from lightning.pytorch.callbacks import Checkpoint

    callbacks = instantiate_each(cfg.get("callbacks"))
    if cfg.trainer.get("enable_checkpointing", True):
        return callbacks
    return [c for c in callbacks if not isinstance(c, Checkpoint)]


def _best_checkpoint(trainer) -> str | None:
    from tunelab.callbacks import best_checkpoint_callback

    callback = best_checkpoint_callback(trainer)
    return (callback.best_model_path if callback else None) or None


def main(argv: list[str]) -> int:
    """Hand the arguments to Hydra as if they were the command line (``-m``, ``--cfg`` ... work)."""
    import hydra

    original = list(sys.argv)

    @hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
    def _entry(cfg):
        # Restore the real command line: Lightning's DDP launcher re-runs it for the other ranks.
        sys.argv = original
        # the next job of a sweep starts its own DDP/FSDP world and its own W&B run
        with distributed.job_world(), one_wandb_run_per_job():
            return train(cfg)

    # conf/hydra/launcher/{basic,joblib,...}.yaml are checked against the plugins' schemas of the same
    # name (wanted: a typo fails); Hydra warns about that on every start, which says nothing to users.
    warnings.filterwarnings(
        "ignore", message=r"\s*'hydra/.*' is validated against ConfigStore schema", category=UserWarning
    )
    from tunelab.config import install_override_hints

    install_override_hints()  # a misspelt key gets the nearest one, not Hydra's "+key" advice
    from tunelab.sweeps import (
        slurm,  # the ${tunelab.slurm_*:...} resolvers of hydra/launcher=slurm
    )

    slurm.install()  # clear sbatch errors, squeue without accounting, SIGUSR1 requeues

    argv = resume.sweep_dir_to_resume(list(argv))  # -m ... resume=true: continue the earlier sweep's folder
    # Hydra creates the run directory before train() runs: check that it can, for a clear error
    named = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    for where in named or [os.environ.get("TUNELAB_OUTPUTS", "outputs")]:
        if "$" not in where:
            preflight.check_output_parent(where)
    sys.argv = [original[0], *argv]
    try:
        _entry()
    finally:
        sys.argv = original
    return 0
