"""Sweep resume: rerun the same sweep command with ``resume=true``.

Three pieces make a sweep restartable after a crash or a preemption:
  1. the sweep directory is found again: the newest earlier sweep under ``multirun/`` whose
     recorded overrides equal this command's (``sweep_dir_to_resume``, before Hydra starts);
  2. job directories are deterministic (``<sweep>/<job number>``; a sweep's grid is always
     enumerated in the same order);
  3. each job skips itself when its ``metrics.json`` exists (written only on success) and otherwise
     continues from ``checkpoints/last.ckpt`` when one was saved (``finished_result``,
     ``resume_checkpoint``). A requeued SLURM sweep job does the same by itself (``requeued``).

``checkpoint_to_resume`` is what ``tunelab train`` fits from: ``ckpt_path=...`` or the job's last.ckpt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tunelab.errors import TunelabError

MULTIRUN_FLAGS = ("-m", "--multirun")
FLAGS_WITH_VALUE = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def _overrides_of(argv: list[str]) -> list[str]:
    """The overrides of a command line, without flags, resume=... and hydra.sweep.dir=..."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg in MULTIRUN_FLAGS:
            skip = False
            continue
        if arg in FLAGS_WITH_VALUE:
            skip = True
            continue
        if not arg.startswith("-") and not arg.startswith(("resume=", "+resume=", "hydra.sweep.dir=", "hydra.mode=")):
            kept.append(arg)
    return sorted(kept)


def _wants_resume(argv: list[str]) -> bool:
    return any(a.lower() in ("resume=true", "+resume=true", "resume=1") for a in argv)


def sweep_dir_to_resume(argv: list[str]) -> list[str]:
    """``argv`` plus ``hydra.sweep.dir=<the earlier sweep>`` for ``tunelab train -m ... resume=true``.

    The earlier sweep is the newest folder under ``<outputs>/multirun`` whose ``multirun.yaml``
    records the same overrides (Hydra's own and the config's). A command that names its
    ``hydra.sweep.dir``, or is not a resumed multirun, is returned unchanged.
    """
    if not (_wants_resume(argv) and any(a in MULTIRUN_FLAGS for a in argv)) or any(
        a.startswith("hydra.sweep.dir=") for a in argv
    ):
        return argv
    from omegaconf import OmegaConf

    given = [a.split("=", 1)[1] for a in argv if a.startswith("paths.output_root=")]
    root = Path(given[-1] if given else os.environ.get("TUNELAB_OUTPUTS", "outputs")) / "multirun"
    from tunelab.run.secrets import scrub

    wanted = _overrides_of(scrub(list(argv)))  # multirun.yaml records secrets masked (tunelab.run.secrets)
    earlier = sorted(root.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
    for record in earlier:
        overrides = OmegaConf.select(OmegaConf.load(record), "hydra.overrides", default={}) or {}
        recorded = [*overrides.get("hydra", []), *overrides.get("task", [])]
        if _overrides_of([str(o) for o in recorded]) == wanted:
            print(f"resume=true: continuing the sweep in {record.parent}")
            return [*argv, f"hydra.sweep.dir={record.parent}"]
    raise TunelabError(
        f"resume=true, but no earlier sweep under {root} was run with these overrides: {' '.join(wanted) or '(none)'}.\n"
        "Rerun exactly the sweep command you ran before, plus resume=true, or name its folder: "
        "hydra.sweep.dir=outputs/multirun/<time> resume=true"
    )


def requeued() -> bool:
    """A sweep job that SLURM requeued (preemption, time limit) and runs again: it continues its own run.

    SLURM counts restarts in SLURM_RESTART_COUNT; submitit reruns the same job in the same run
    folder, so resuming needs no ``resume=true`` (tunelab.sweeps.slurm). A job script run by sbatch
    without submitit is left to Lightning, which resumes from its own ``hpc_ckpt_N.ckpt``."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and os.environ.get("SLURM_RESTART_COUNT", "0") not in (
        "",
        "0",
    )


def _resuming(cfg) -> bool:
    return bool(cfg.get("resume")) or requeued()


def finished_result(cfg, run_dir: Path) -> dict | None:
    """The stored summary of a job that already finished, when resuming; None means: run it."""
    done = Path(run_dir) / "metrics.json"
    if _resuming(cfg) and done.exists():
        return json.loads(done.read_text())
    return None


def resume_checkpoint(cfg, run_dir: Path) -> str | None:
    """``checkpoints/last.ckpt`` of an interrupted job (a file, or a folder for sharded FSDP)."""
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if _resuming(cfg) and last.exists():
        return str(last)
    return None


def checkpoint_to_resume(cfg, run_dir: Path, task, module) -> str | None:
    """The checkpoint this run continues from, checked against its task and model (None: from scratch).

    ``ckpt_path`` when given (``last``: this run directory's last.ckpt, or none when there is none yet, so
    job scripts can always pass it), else the interrupted job's last.ckpt under ``resume=true``."""
    from tunelab.run.preflight import check_resume

    ckpt_path = cfg.get("ckpt_path") or resume_checkpoint(cfg, run_dir)
    if ckpt_path == "last":
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.exists() else None
    if ckpt_path:
        check_resume(ckpt_path, task, module)
    return ckpt_path
