"""Logger factories whose defaults fit sweeps: names from overrides, groups from the sweep."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


def _job_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ValueError, ImportError):  # not running under Hydra
        return []


def _sweep_name() -> str | None:
    """The committed sweep this job belongs to (sweeps=NAME), if any."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().runtime.choices.get("sweeps")
    except (ValueError, ImportError):
        return None


def _sweep_group() -> str | None:
    """``<sweeps option>-<sweep folder>`` (lr_freeze-2026-11-23_12-14-01) in a multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        cfg = HydraConfig.get()
        if cfg.mode == RunMode.MULTIRUN:
            folder = os.path.basename(os.path.normpath(cfg.sweep.dir))
            sweep = _sweep_name()
            return f"{sweep}-{folder}" if sweep else folder
    except (ValueError, ImportError):
        pass
    return None


# overrides shared by every job of a sweep (its group says them) or that are bookkeeping, not a setting
_NOT_IN_NAME = (
    "hydra.",
    "hydra/",
    "logger",
    "sweeps=",
    "resume=",
    "print_config=",
    "~callbacks.progress_bar",
    "+callbacks.optuna.",
)


def _run_id(save_dir: str) -> str:
    """The W&B run id of this run directory: kept in wandb/run-id, so a resumed run continues it."""
    from pathlib import Path

    record = Path(save_dir) / "wandb" / "run-id"
    if record.exists():
        return record.read_text().strip()
    import uuid

    run_id = uuid.uuid4().hex[:8]  # W&B ids: lowercase letters and digits
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(run_id + "\n")
    return run_id


def wandb_logger(
    save_dir: str,
    project: str = "tunelab",
    name: str | None = None,
    group: str | None = None,
    tags: list | None = None,
    job_type: str = "train",
    **kwargs,
):
    """A ``WandbLogger`` that never prompts: offline unless a key is configured.

    The run name defaults to the job's overrides (``lr=2e-5,seed=1``), the group to the sweep,
    the tags include the sweep's name; the run id is stored in the run directory, so resuming the
    run (ckpt_path=last, or a sweep with resume=true) continues the same W&B run.
    """
    from lightning.pytorch.loggers import WandbLogger

    has_key = bool(os.environ.get("WANDB_API_KEY")) or os.path.exists(os.path.expanduser("~/.netrc"))
    if not has_key and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    from tunelab.run.secrets import scrub

    # the run name is built from the overrides, which may carry a secret typed on the command line
    overrides = scrub([o for o in _job_overrides() if not o.startswith(_NOT_IN_NAME)])
    group = group or _sweep_group()
    tags = list(tags or []) + [t for t in (_sweep_name(),) if t and t not in (tags or [])]
    kwargs.setdefault("id", _run_id(save_dir))
    kwargs.setdefault("resume", "allow")
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name or (",".join(overrides) or None),
        group=group,
        tags=tags,
        job_type=job_type,
        **kwargs,
    )


def flat_config(cfg) -> dict:
    """The resolved config as one flat mapping (``optimizer.lr: 5e-05``): sortable columns in W&B."""
    from omegaconf import OmegaConf

    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node if isinstance(node, (int, float, str, bool)) or node is None else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def log_config(loggers, cfg, run_info: dict | None = None) -> None:
    """Every logger records the run's full config (W&B config, CSV hparams.yaml, TensorBoard hparams)
    and the run metadata, with secrets masked."""
    from tunelab.run.secrets import masked_argv, scrub

    if loggers:
        params = scrub({**flat_config(cfg), **({"run": run_info} if run_info else {})})
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                # W&B records sys.argv in the run's metadata when the run starts (the first use of
                # .experiment, here): let it see the command line with secrets masked
                with masked_argv():
                    _ = logger.experiment  # starts the W&B run
            logger.log_hyperparams(params)


@contextmanager
def one_wandb_run_per_job():
    """End the job's W&B run when the job ends. Lightning leaves it open, and the next job of a sweep
    in the same process would otherwise log into it (WandbLogger reuses a live ``wandb.run``)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish(exit_code=1 if failed else 0)
