"""DDP and FSDP inside a Hydra multirun: each job with N processes runs once, in one run directory.

Lightning starts ranks 1..N-1 by re-running the command line. Under Hydra it re-runs
``sys.argv`` plus ``hydra.run.dir=<hydra.run.dir>``; inside a ``-m`` sweep that argv still holds
``-m`` and the whole sweep, so rank 1 runs every job again by itself, into other folders
(lightning-hydra-template #393). Under joblib or submitit workers ``__main__`` is the worker's
module, not tunelab, so the re-run command is wrong altogether.

``child_command`` builds the rank's command from the job itself instead: ``tunelab train`` with
this job's overrides only (no ``-m``), writing into this job's directory, without Hydra's own
``.hydra/`` record (rank 0 wrote it). ``install`` puts it in place of Lightning's.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


def child_command(local_rank: int) -> tuple[list[str], str]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hydra = HydraConfig.get()
    command = [sys.executable, "-m", "tunelab", "train", *hydra.overrides.task]
    for source in hydra.runtime.config_sources:  # a user's --config-dir
        if source.provider == "command-line" and source.schema == "file":
            command += ["--config-dir", source.path]
    command += [
        f"hydra.run.dir='{hydra.runtime.output_dir}'",
        f"hydra.job.name={hydra.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
        "print_config=false",
    ]
    return command, get_original_cwd()


def install() -> None:
    """Make Lightning start the other ranks with ``child_command`` (idempotent)."""
    import lightning.fabric.strategies.launchers.subprocess_script as fabric_launcher
    import lightning.pytorch.strategies.launchers.subprocess_script as trainer_launcher

    fabric_launcher._hydra_subprocess_cmd = child_command
    trainer_launcher._hydra_subprocess_cmd = child_command


# Lightning writes these into os.environ when it launches the ranks, and takes LOCAL_RANK's presence
# to mean "the processes were started for me": left behind, the next job of a sweep running in the
# same process would wait forever for ranks nobody starts.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def job_world():
    """One job's distributed world: on leaving, end its process group and restore the launch variables.

    In a SLURM job, a run stopped by the preemption signal is then handed to submitit, which requeues
    the job (``tunelab.sweeps.slurm.hand_over_preemption``)."""
    before = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}
    try:
        yield
    except Exception as error:
        from tunelab.sweeps import slurm

        _end_world(before)  # before submitit exits the process
        slurm.hand_over_preemption(error)
        raise
    finally:
        _end_world(before)


def _end_world(before: dict) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def global_rank() -> int:
    """This process's rank, from the variables torchrun, Lightning and SLURM set (0 when alone).

    Same order as Lightning's own ``rank_zero_only``: a child Lightning starts inside a one-task
    SLURM job inherits SLURM_PROCID=0 but has its own LOCAL_RANK."""

    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0
