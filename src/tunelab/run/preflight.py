"""Checks that run before training starts, so a run fails in seconds rather than hours in.

check_output_dir      the run directory can be created and written
check_free_space      the disk holds the checkpoints this run will write
check_output_paths    checkpoints and logs stay inside the run directory unless the user named
                      another place on the command line
check_resume          a ckpt_path exists, is a readable checkpoint, of this head and this backbone
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from tunelab.errors import TunelabError

# bytes per parameter in one checkpoint: fp32 weights + AdamW's two moments
_CHECKPOINT_BYTES_PER_PARAM = 12
_MARGIN = 64 << 20


def check_output_dir(run_dir: Path) -> None:
    run_dir = Path(run_dir)
    probe = run_dir / ".write-test"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise TunelabError(
            f"Cannot write to the output directory '{run_dir}': {reason}.\n"
            "Choose a writable place with hydra.run.dir=DIR (one run) or TUNELAB_OUTPUTS=DIR (all runs)."
        ) from None


def check_output_parent(path: str) -> None:
    """Before Hydra creates the run directory (it would fail with a traceback): can it be created?"""
    target = Path(path).expanduser().absolute()
    ancestor = target
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    problem = (
        "is not a folder"
        if not ancestor.is_dir()
        else "is not writable"
        if not os.access(ancestor, os.W_OK | os.X_OK)
        else None
    )
    if problem:
        raise TunelabError(
            f"Cannot write to the output directory '{path}': {ancestor} {problem}.\n"
            "Choose a writable place with hydra.run.dir=DIR (one run) or TUNELAB_OUTPUTS=DIR (all runs)."
        )


def check_free_space(run_dir: Path, parameters: int, checkpoints: int = 2) -> None:
    """Room for ``checkpoints`` files (best + last) plus one being written."""
    needed = parameters * _CHECKPOINT_BYTES_PER_PARAM * (checkpoints + 1) + _MARGIN
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise TunelabError(
            f"Not enough disk space for this run in '{run_dir}': {free / 2**20:,.0f} MiB free, about "
            f"{needed / 2**20:,.0f} MiB needed for {checkpoints} checkpoints of {parameters:,} parameters.\n"
            "Free some space, or write elsewhere with hydra.run.dir=DIR or TUNELAB_OUTPUTS=DIR."
        )


def _named_on_command_line() -> set[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
    except (ValueError, ImportError):
        return set()


def output_locations(cfg) -> dict[str, str]:
    """Config keys that name where a run writes files, and their values."""
    found = {}
    for group, keys in (("callbacks", ("dirpath",)), ("logger", ("save_dir",))):
        for name, sub in (cfg.get(group) or {}).items():
            for key in keys:
                if sub is not None and sub.get(key) is not None:
                    found[f"{group}.{name}.{key}"] = str(sub.get(key))
    if cfg.get("trainer") is not None and cfg.trainer.get("default_root_dir") is not None:
        found["trainer.default_root_dir"] = str(cfg.trainer.default_root_dir)
    return found


def check_output_paths(cfg, run_dir: Path) -> None:
    root = Path(run_dir).resolve()
    named = _named_on_command_line()
    for key, value in output_locations(cfg).items():
        target = Path(value).expanduser()
        target = (target if target.is_absolute() else Path.cwd() / target).resolve()
        if not target.is_relative_to(root) and key not in named:
            raise TunelabError(
                f"{key}={value} writes outside the run directory {root}. tunelab only writes elsewhere when "
                f"you name the place on the command line: {key}=DIR (or move the run with hydra.run.dir=DIR)."
            )
    for name, sub in (cfg.get("callbacks") or {}).items():
        filename = sub.get("filename") if sub is not None else None
        if filename and (os.sep in str(filename) or ".." in str(filename)):
            raise TunelabError(
                f"callbacks.{name}.filename={filename} must be a plain file name, without '/' or '..'. "
                f"Use callbacks.{name}.dirpath to choose the folder."
            )


def check_resume(ckpt_path: str, task, module) -> None:
    """A clear error for a checkpoint that is missing, unreadable, or of another head/backbone."""
    import torch

    path = Path(ckpt_path)
    if path.is_dir() and (path / ".metadata").exists():
        from tunelab.model.sharding import check_sharded_checkpoint

        check_sharded_checkpoint(path)  # Lightning's loader would unpickle it: refuse what would run code
        return  # a sharded (FSDP2) checkpoint folder: Lightning's distributed loader checks its shards
    if not path.is_file():
        raise TunelabError(
            f"ckpt_path={ckpt_path} does not exist. Give a .ckpt file, or ckpt_path=last to resume "
            "the last checkpoint of this run directory (hydra.run.dir)."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise TunelabError(
            f"ckpt_path={ckpt_path} is not a readable checkpoint ({type(err).__name__}: {str(err)[:200]}). "
            "It may be truncated or not a Lightning checkpoint; use another one (checkpoints/*.ckpt)."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise TunelabError(f"ckpt_path={ckpt_path} is not a Lightning checkpoint (no state_dict).")
    saved_task = (checkpoint.get("tunelab") or {}).get("task")
    ours = type(task).__qualname__
    if saved_task and saved_task != ours:
        raise TunelabError(
            f"ckpt_path={ckpt_path} was trained with the {saved_task} head, but this run uses {ours}. "
            "Resume with the same task=..., or start without ckpt_path."
        )
    # the module says what its checkpoints hold (all tensors, or only the trained ones of a PEFT/frozen run)
    module.checkpoint_contents.check(checkpoint["state_dict"], module.state_dict(), f"ckpt_path={ckpt_path}")
