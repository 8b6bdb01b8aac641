"""SLURM resources from the trainer (the resolvers conf/hydra/launcher/slurm.yaml uses) and sbatch's refusals
as one clear message (tunelab/sweeps/slurm.py installs both)."""

from __future__ import annotations

import re

from omegaconf import OmegaConf

from tunelab.errors import TunelabError

GPU_ACCELERATORS = {"gpu", "cuda"}


def _count(devices) -> int:
    """Ranks per node for ``trainer.devices``: a number, a list of ids, or -1/"auto" (one, as SLURM grants)."""
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return max(1, len(devices))
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    try:
        return max(1, int(devices))
    except (TypeError, ValueError):  # "auto": what SLURM gives a one-task job
        return 1


def gpus_per_node(accelerator, devices):
    """GPUs to ask SLURM for: the trainer's devices on a GPU accelerator, none otherwise (null: no --gpus flag)."""
    return _count(devices) if str(accelerator).lower() in GPU_ACCELERATORS else None


def tasks_per_node(devices) -> int:
    """One SLURM task per rank: Lightning's SLURMEnvironment picks them up, nothing is re-launched."""
    return _count(devices)


def cpus_per_task(num_workers) -> int:
    """The training process plus its data-loader workers."""
    return 1 + int(num_workers or 0)


for _name, _fn in {
    "tunelab.slurm_gpus": gpus_per_node,
    "tunelab.slurm_tasks": tasks_per_node,
    "tunelab.slurm_cpus": cpus_per_task,
}.items():
    OmegaConf.register_new_resolver(_name, _fn, replace=True)


# sbatch's reason -> the launcher keys that change it (first match wins)
REASONS = [
    (
        r"gres|generic resource|gpu",
        ["gpus_per_node", "gpus_per_task", "gres"],
        "GPUs asked on a cluster or partition without them; on CPUs use trainer.accelerator=cpu "
        "(no GPU is requested then) or hydra.launcher.gpus_per_node=null",
    ),
    (r"memory", ["mem_gb", "mem_per_cpu", "mem_per_gpu"], "more memory than a node has"),
    (r"processors|cpu", ["cpus_per_task", "tasks_per_node"], "more CPUs than a node has"),
    (r"partition", ["partition"], "see `sinfo -s` for the partitions"),
    (r"account|association", ["account"], "see `sacctmgr show assoc user=$USER`"),
    (r"qos", ["qos"], "see `sacctmgr show qos`"),
    (r"time limit", ["timeout_min"], "longer than the partition allows (`sinfo -s` shows its limit)"),
    (
        r"node configuration|constraint|feature",
        ["cpus_per_task", "mem_gb", "gpus_per_node", "constraint"],
        "no node has all of these at once",
    ),
    (
        r"contact slurm controller|connection refused|unable to contact",
        [],
        "the SLURM controller does not answer: is the cluster up? (`sinfo`; locally: scripts/slurm-local.sh start)",
    ),
]


def sbatch_refusal(stderr: str, params: dict) -> TunelabError:
    """One paragraph for a refused submission: sbatch's reason, the key(s) to change, their values now."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reason = "; ".join(
        re.sub(r"^sbatch: error: (Batch job submission failed: )?", "", line)
        for line in lines
        if "error" in line.lower()
    ) or (lines[-1] if lines else "no reason given")
    keys, hint = [], "check the hydra.launcher.* values against `sinfo -o '%P %c %m %G'`"
    for pattern, candidates, why in REASONS:
        if re.search(pattern, reason, re.IGNORECASE):
            keys, hint = candidates, why
            break
    set_keys = [k for k in keys if params.get(k) is not None] or keys[:1]
    now = ", ".join(f"hydra.launcher.{k}={params.get(k)}" for k in set_keys)
    change = f" Change {' / '.join('hydra.launcher.' + k for k in keys)} (now: {now})" if keys else ""
    return TunelabError(
        f'SLURM refused the sweep\'s jobs: sbatch said "{reason}" ({hint}).{change} on the command line, '
        "or for this machine in conf/local/slurm.yaml. Nothing was submitted."
    )
