"""Logger factories whose defaults fit sweeps: names from overrides, groups from the sweep."""

from __future__ import annotations

import os


def _job_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ValueError, ImportError):  # not running under Hydra
        return []


def _sweep_group() -> str | None:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        cfg = HydraConfig.get()
        if cfg.mode == RunMode.MULTIRUN:
            return os.path.basename(os.path.normpath(cfg.sweep.dir))
    except (ValueError, ImportError):
        pass
    return None


def wandb_logger(save_dir: str, project: str = "tunelab", name: str | None = None, group: str | None = None,
                 tags: list | None = None, job_type: str = "train", **kwargs):
    """A ``WandbLogger`` that never prompts: offline unless a key is configured.

    The run name defaults to the job's overrides (``lr=2e-5,seed=1``), the group to the sweep.
    """
    from lightning.pytorch.loggers import WandbLogger

    has_key = bool(os.environ.get("WANDB_API_KEY")) or os.path.exists(os.path.expanduser("~/.netrc"))
    if not has_key and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    from tunelab.secrets import scrub

    # the run name is built from the overrides, which may carry a secret typed on the command line
    overrides = scrub([o for o in _job_overrides() if not o.startswith(("hydra.", "logger"))])
    return WandbLogger(save_dir=save_dir, project=project, name=name or (",".join(overrides) or None),
                       group=group or _sweep_group(), tags=list(tags or []), job_type=job_type, **kwargs)
