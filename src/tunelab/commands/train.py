"""``tunelab train``: compose the config, build the pieces, fit, test, write metrics.json.

The whole path from the command to the optimizer step, in order:
  config (Hydra) -> task -> data module (tokenize, learn labels) -> TuneModule (backbone + head,
  optimizer, schedule) -> callbacks, loggers -> lightning.Trainer.fit -> test (best checkpoint)
  -> <run>/metrics.json
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

from tunelab.commands.parts import build
from tunelab.config import (
    config_dir,
    instantiate,
    instantiate_each,
    print_tree,
    validate,
)
from tunelab.errors import TunelabError
from tunelab.run import distributed, preflight, resume
from tunelab.run.loggers import log_config, one_wandb_run_per_job
from tunelab.run.noise import silence_known_noise
from tunelab.run.record import RunRecord
from tunelab.run.secrets import install_log_filter, masked_config


def train(cfg) -> dict:
    """Run one experiment from a composed config; returns the final metrics."""
    import lightning as L
    from hydra.core.hydra_config import HydraConfig
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from tunelab.callbacks import (
        PreemptedError,
        PreemptionCheckpoint,
        best_checkpoint_callback,
    )

    # imported here, not at the top: tunelab.data imports Lightning, which must come after Hydra's logging set-up
    from tunelab.data.fingerprint import data_fingerprint
    from tunelab.run.memory import peak_memory_mb
    from tunelab.tuning.report import format_report

    silence_known_noise()
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.paths.output_dir)
    previous = resume.finished_result(cfg, run_dir)
    if previous is not None:  # a sweep rerun with resume=true: this job is done
        print(f"resume=true: {run_dir} finished earlier; skipped.")
        return previous["metrics"]
    if HydraConfig.initialized():
        distributed.install()  # DDP/FSDP ranks re-run this job alone, not the whole sweep
    record = RunRecord(run_dir)
    with record:
        validate(cfg)
        install_log_filter()
        preflight.check_output_dir(run_dir)
        preflight.check_output_paths(cfg, run_dir)
        if cfg.get("print_config", True):
            print_tree(masked_config(cfg), full=cfg.get("print_config") == "full")  # secrets as ***
        record.start(cfg, overrides=list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [])

        L.seed_everything(cfg.seed, workers=True, verbose=False)
        parts = build(cfg)
        task, datamodule, module = parts.task, parts.datamodule, parts.module
        record.update(data_fingerprint=data_fingerprint(datamodule.splits))
        params = module.num_parameters()
        print(format_report(params))
        preflight.check_free_space(run_dir, params["total"])
        ckpt_path = cfg.get("ckpt_path") or resume.resume_checkpoint(cfg, run_dir)
        if ckpt_path == "last":  # no last.ckpt yet: start from scratch (so job scripts can always pass it)
            ckpt_path = (
                str(run_dir / "checkpoints" / "last.ckpt") if (run_dir / "checkpoints" / "last.ckpt").exists() else None
            )
        if ckpt_path:
            preflight.check_resume(ckpt_path, task, module)

        trainer = instantiate(
            cfg.trainer,
            "trainer",
            callbacks=instantiate_each(cfg.get("callbacks")),
            logger=instantiate_each(cfg.get("logger")) or False,
        )
        log_config(trainer.loggers, cfg, run_info=record.info)  # flat config + run metadata, secrets masked
        started = time.perf_counter()
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except SIGTERMException:  # a SystemExit with code 0: make it a failure that says what to do
            saved = next((c.saved for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)), None)
            raise PreemptedError("SIGTERM", saved) from None
        fit_seconds = time.perf_counter() - started
        if trainer.ckpt_path:  # ckpt_path=last, or Lightning's own pick (an HPC checkpoint on SLURM)
            record.update(resumed_from=str(trainer.ckpt_path))
        if trainer.interrupted:
            raise TunelabError("Training was interrupted; no test was run and no metrics.json written.")

        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        best_callback = best_checkpoint_callback(trainer)
        best = best_callback.best_model_path if best_callback else ""
        if cfg.get("test", True):
            # fit is over: drop its optimizers, or a sharded (FSDP2) strategy would ask the best checkpoint, which
            # is saved without optimizer state, for theirs when it loads it for the test
            trainer.strategy.optimizers = []
            results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
            metrics.update({k: float(v) for k, v in results[0].items()})
            from tunelab.run import (
                test_predictions,  # per test row: what compare's per-example tests pair
            )

            test_predictions.write(trainer, module, datamodule, best, run_dir)
        summary = {
            "metrics": metrics,
            "monitor": {
                "metric": task.metric,
                "mode": task.metric_mode,
                "best": float(best_callback.best_model_score)
                if best_callback and best_callback.best_model_score is not None
                else None,
            },
            "best_checkpoint": str(Path(best).relative_to(run_dir))
            if best and Path(best).is_relative_to(run_dir)
            else best,
            "epochs": trainer.current_epoch,
            "global_steps": trainer.global_step,
            "fit_seconds": round(fit_seconds, 2),
            "parameters": params,
            "checkpoint_mb": round(Path(best).stat().st_size / 2**20, 3) if best and Path(best).exists() else None,
            "peak_memory_mb": peak_memory_mb(),
            "data": {
                "name": datamodule.name,
                "sizes": {s: len(d) for s, d in datamodule.splits.items()},
                "tokenized_cache": datamodule.cache_key() if datamodule.cache else None,
            },
            "seed": cfg.seed,
        }
        record.finish(summary)
        if not cfg.get("keep_last", True) and record.writes:  # a finished run keeps best.ckpt only (disk)
            (run_dir / "checkpoints" / "last.ckpt").unlink(missing_ok=True)
    if record.writes:
        _print_result(summary, run_dir)
    return metrics


def _print_result(summary: dict, run_dir: Path) -> None:
    width = max(len(k) for k in summary["metrics"]) if summary["metrics"] else 0
    print("\nfinal metrics")
    for key, value in sorted(summary["metrics"].items()):
        print(f"  {key:<{width}}  {value:.4f}")
    print(f"epochs {summary['epochs']}  steps {summary['global_steps']}  fit {summary['fit_seconds']:.0f}s")
    print(f"run directory: {run_dir}")


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
