"""``tunelab compare SWEEP --rerun-top N --seeds K``: rerun the N best configurations with K more seeds.

The new runs go into the same sweep folder (``<sweep>/rerun-c<rank>-seed<seed>``), so the next
``tunelab compare`` aggregates them with the earlier seeds and its verdict sharpens. Every
configuration gets the same new seeds (never one the sweep used), so they pair (same seed, same
data order: compare's paired t-test). Each configuration reruns with the exact overrides its first
run recorded (``.hydra/overrides.yaml``) and the sweep's own launcher settings (``multirun.yaml``);
the sweep's ``multirun.yaml`` is kept as it was, so ``resume=true`` still finds the original sweep.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tunelab.errors import TunelabError

SKIP = ("seed=", "+seed=", "resume=", "+resume=", "+callbacks.optuna.", "hydra.")
HYDRA_SKIP = ("hydra.sweep.", "hydra.mode", "hydra.run.", "hydra/sweeper", "hydra.sweeper.")


def _recorded(run_dir: Path) -> list[str]:
    from omegaconf import OmegaConf

    out = []
    for item in map(str, OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")):
        if item.startswith(SKIP):
            continue
        if item.startswith("~") and item.endswith("=null"):  # Hydra records a deletion as ~key=null
            item = item[: -len("=null")]
        out.append(item)
    return out


def _used_seeds(runs) -> set[int]:
    seeds = set()
    for run in runs:
        if (run.path / "metrics.json").exists():
            seeds.add(int(json.loads((run.path / "metrics.json").read_text()).get("seed", 0)))
        elif str(run.overrides.get("seed", "")).lstrip("-").isdigit():
            seeds.add(int(run.overrides["seed"]))
    return seeds


def new_seeds(runs, k: int) -> list[int]:
    used = _used_seeds(runs)
    start = max(used, default=0) + 1
    return list(range(start, start + k))


def rerun_top(sweep: str, result: dict, top: int, seeds: int) -> list[Path]:
    """Launch the reruns (``tunelab train -m`` in this process, one sweep per configuration)."""
    from omegaconf import OmegaConf

    from tunelab.commands import train

    if top < 1 or seeds < 1:
        raise TunelabError(f"--rerun-top and --seeds must be at least 1, got {top} and {seeds}.")
    sweep_dir = Path(sweep)
    record = sweep_dir / "multirun.yaml"
    if not record.exists():
        raise TunelabError(f"--rerun-top needs a sweep folder (with multirun.yaml); '{sweep}' is not one.")
    mode = result["mode"]
    ranked = sorted((g for g in result["groups"] if g.values), key=lambda g: g.mean, reverse=mode == "max")[:top]
    if not ranked:
        raise TunelabError(f"No completed run in '{sweep}' to rerun.")
    hydra_args = [
        str(o)
        for o in OmegaConf.select(OmegaConf.load(record), "hydra.overrides.hydra", default=[]) or []
        if not str(o).startswith(HYDRA_SKIP)
    ]
    chosen = new_seeds(result["runs"], seeds)
    backup = record.read_bytes()
    made = []
    try:
        for rank, group in enumerate(ranked):
            first = next(r for r in group.runs if r.status == "completed")
            overrides = _recorded(first.path)
            print(f"rerun {rank + 1}/{len(ranked)}: {' '.join(overrides)} seed={','.join(map(str, chosen))}")
            train.main(
                [
                    "-m",
                    *overrides,
                    f"seed={','.join(map(str, chosen))}",
                    *hydra_args,
                    f"hydra.sweep.dir={sweep_dir}",
                    f"hydra.sweep.subdir=rerun-c{rank}-seed${{seed}}",
                ]
            )
            made += [sweep_dir / f"rerun-c{rank}-seed{s}" for s in chosen]
            shutil.copyfile(record, sweep_dir / f"multirun.rerun-c{rank}.yaml")
    finally:
        record.write_bytes(backup)  # the sweep's own record: resume=true and compare keep finding it
    return made
