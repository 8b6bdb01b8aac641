"""What every ``tunelab train`` job does around its training (lightning-hydra-template's ``task_wrapper``).

``@job`` turns ``train(cfg, record)`` into ``train(cfg)``, which

  before    skips a job that finished earlier when a sweep is resumed (``resume=true``); makes DDP/FSDP start
            the other ranks for this job alone (tunelab.run.distributed); validates the config; checks the run
            directory and where checkpoints and logs go (tunelab.run.preflight); prints the config (secrets as
            ***); starts run.json (tunelab.run.record)
  around    turns SIGTERM (Lightning's SIGTERMException, a SystemExit with code 0) into a PreemptedError naming
            the checkpoint saved; any failure marks run.json failed or interrupted
  after     deletes last.ckpt under keep_last=false; prints the final metrics (rank 0)

so that ``train`` itself is only: seed, build the parts, fit, test.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tunelab.run import distributed, preflight, resume
from tunelab.run.record import RunRecord


def job(train):
    """Wrap ``train(cfg, record) -> metrics`` with the bookkeeping of one run (see the module docstring)."""

    @functools.wraps(train)
    def run(cfg) -> dict:
        from hydra.core.hydra_config import HydraConfig

        from tunelab.run.noise import silence_known_noise

        silence_known_noise()
        run_dir = _run_dir(cfg)
        previous = resume.finished_result(cfg, run_dir)
        if previous is not None:  # a sweep rerun with resume=true: this job is done
            print(f"resume=true: {run_dir} finished earlier; skipped.")
            return previous["metrics"]
        if HydraConfig.initialized():
            distributed.install()  # DDP/FSDP ranks re-run this job alone, not the whole sweep
        record = RunRecord(run_dir)
        with record:
            _start(cfg, record)
            metrics = _translating_sigterm(train, cfg, record)
            if not cfg.get("keep_last", True) and record.writes:  # a finished run keeps best.ckpt only (disk)
                (run_dir / "checkpoints" / "last.ckpt").unlink(missing_ok=True)
        record.print_result()
        return metrics

    return run


def _run_dir(cfg) -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.paths.output_dir)


def _start(cfg, record: RunRecord) -> None:
    """Checks that fail in seconds, the config on screen, run.json started."""
    from hydra.core.hydra_config import HydraConfig

    from tunelab.config import print_tree, validate
    from tunelab.run.secrets import install_log_filter, masked_config

    validate(cfg)
    install_log_filter()
    preflight.check_output_dir(record.run_dir)
    preflight.check_output_paths(cfg, record.run_dir)
    if cfg.get("print_config", True):
        print_tree(masked_config(cfg), full=cfg.get("print_config") == "full")  # secrets as ***
    record.start(cfg, overrides=list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [])


def _translating_sigterm(train, cfg, record: RunRecord) -> dict:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from tunelab.callbacks import PreemptedError, PreemptionCheckpoint

    try:
        return train(cfg, record)
    except SIGTERMException:  # a SystemExit with code 0: make it a failure that says what to do
        callbacks = record.trainer.callbacks if record.trainer is not None else []
        saved = next((c.saved for c in callbacks if isinstance(c, PreemptionCheckpoint)), None)
        raise PreemptedError("SIGTERM", saved) from None
