"""Sweep resume: rerun the same sweep command with ``resume=true``.

Three pieces make a sweep restartable after a crash or a preemption:
  1. the sweep directory is found again: ``hydra.sweep.dir`` resolves to the newest earlier sweep
     under ``multirun/`` whose recorded overrides equal this command's (``sweep_dir`` below);
  2. job directories are deterministic (``<sweep>/<job number>``; a sweep's grid is always
     enumerated in the same order);
  3. each job skips itself when its ``metrics.json`` exists (written only on success) and otherwise
     continues from ``checkpoints/last.ckpt`` when one was saved (``finished_result``,
     ``resume_checkpoint``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.errors import TunelabError

RESOLVER = "tunelab_sweep_dir"


def _comparable(overrides) -> list[str]:
    return sorted(str(o) for o in overrides if not str(o).startswith(("resume=", "+resume=")))


def sweep_dir(root: str, stamp: str, resume, overrides) -> str:
    """``root/stamp`` for a new sweep; with resume, the newest earlier sweep with the same overrides."""
    if str(resume).lower() not in ("true", "1", "yes"):
        return f"{root}/{stamp}"
    from omegaconf import OmegaConf

    wanted = _comparable(overrides)
    earlier = sorted(Path(root).glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
    for record in earlier:
        recorded = OmegaConf.select(OmegaConf.load(record), "hydra.overrides.task", default=[]) or []
        if _comparable(recorded) == wanted:
            print(f"resume=true: continuing the sweep in {record.parent}")
            return str(record.parent)
    raise TunelabError(
        f"resume=true, but no earlier sweep under {root} was run with these overrides: {' '.join(wanted) or '(none)'}.\n"
        "Rerun exactly the sweep command you ran before, plus resume=true, or point at the sweep folder: "
        "hydra.sweep.dir=outputs/multirun/<time> resume=true")


def register_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, sweep_dir, use_cache=True)


def finished_result(cfg, run_dir: Path) -> dict | None:
    """The stored summary of a job that already finished, when resuming; None means: run it."""
    done = Path(run_dir) / "metrics.json"
    if cfg.get("resume") and done.exists():
        return json.loads(done.read_text())
    return None


def resume_checkpoint(cfg, run_dir: Path) -> str | None:
    """``checkpoints/last.ckpt`` of an interrupted job (a file, or a folder for sharded FSDP)."""
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if cfg.get("resume") and last.exists():
        return str(last)
    return None
