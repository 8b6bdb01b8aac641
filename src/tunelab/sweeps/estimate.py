"""``tunelab estimate <the arguments of a tunelab train -m sweep>``: what the sweep will cost, before it runs.

1. Compose every job of the grid as the basic sweeper would (the command line's comma lists and the
   ``hydra.sweeper.params`` of a ``sweeps=`` config, cartesian product).
2. Profile each distinct shape (model config incl. PEFT method and frozen layers, max length, batch
   size, precision, task) once: the real ``tunelab train`` of its first job on the real data, cut to
   a few batches per split (``limit_*_batches``), timing every batch and every checkpoint save.
   Batch time is fitted as ``a + b * padded tokens`` (train and evaluation separately); everything
   else the short run spent is the shape's fixed cost, in three parts (tunelab/sweeps/profile.py
   ``fixed_costs``): the time to the first step (model load, data set-up, the first step's warm-up),
   the loop overhead of a validation pass, and the after-fit part (test and prediction start-up,
   checkpoint reloads), each less the fitted seconds of the batches it contains.
3. Plan each job's batches exactly: the samplers the run will use give every batch's rows and
   padded length without tokenizing or collating anything; epochs, ``max_steps``, ``limit_*``,
   ``val_check_interval`` and the test-predictions pass are counted as the run will.

Prints per job and in total: wall seconds on this machine for the planned epochs (train,
validation, test), peak memory, checkpoint disk; the last line is one JSON object with
``total_seconds``. Assumes every planned epoch runs (early stopping can only make a job shorter),
one process per job, jobs one after another (the basic launcher). The profile primes the
tokenization cache, so the sweep's first job does not tokenize.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tunelab.errors import TunelabError
from tunelab.sweeps.profile import compose_job, profile


def job_overrides(argv: list[str]) -> list[list[str]]:
    """The override list of every job of ``tunelab train -m ARGV``, in the sweep's order."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tunelab.config import config_dir

    args = [a for a in argv if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in args):
        raise TunelabError(
            f"tunelab estimate takes the overrides of a sweep, not flags ({[a for a in args if a.startswith('-')][0]})."
        )
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(args)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=fixed, return_hydra_config=True)
        if "optuna" in str(cfg.hydra.sweeper.get("_target_", "")).lower():
            raise TunelabError(
                "tunelab estimate plans grid sweeps (the basic sweeper); an Optuna search picks its "
                "trials as it runs. Estimate one trial: tunelab estimate <its overrides> (no -m)."
            )
        params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    all_overrides = parser.parse_overrides([*params, *args])
    return [list(job) for batch in BasicSweeper.split_arguments(all_overrides, None) for job in batch]


def shape_key(cfg) -> str:
    from omegaconf import OmegaConf

    def plain(node):
        return OmegaConf.to_container(node, resolve=False) if node is not None else None

    return json.dumps(
        {
            "model": plain(cfg.model),
            "max_length": cfg.data.max_length,
            "batch": cfg.data.batch_size,
            "eval_batch": cfg.data.get("eval_batch_size"),
            "precision": str(cfg.trainer.get("precision")),
            "task": plain(cfg.task),
        },
        sort_keys=True,
        default=str,
    )


# ---- the batches a job will run
def _batch_tokens(loader) -> list[int]:
    lengths = loader.dataset["length"]
    return [len(b) * max(lengths[i] for i in b) for b in loader.batch_sampler]


def _limited(n: int, limit) -> int:
    if limit is None:
        return n
    return min(n, int(limit)) if isinstance(limit, int) or float(limit) > 1 else int(n * float(limit))


def plan(cfg, datamodule) -> dict:
    """Padded tokens of every train batch (per epoch), validation pass, test pass; counts of passes and saves."""
    from tunelab.run import test_predictions

    trainer = cfg.trainer
    train = _batch_tokens(datamodule.train_dataloader())[: _limited(10**12, trainer.get("limit_train_batches"))]
    val = _batch_tokens(datamodule.val_dataloader())[: _limited(10**12, trainer.get("limit_val_batches"))]
    test = _batch_tokens(datamodule.test_dataloader())[: _limited(10**12, trainer.get("limit_test_batches"))]
    epochs = int(trainer.get("max_epochs") or 1)
    max_steps = int(trainer.get("max_steps") or -1)
    accumulate = int(trainer.get("accumulate_grad_batches") or 1)
    if max_steps > 0:
        epochs = min(epochs, math.ceil(max_steps * accumulate / max(1, len(train))))
    total_batches = min(epochs * len(train), max_steps * accumulate if max_steps > 0 else 10**12)
    interval = trainer.get("val_check_interval") or 1.0
    every = max(1, int(len(train) * float(interval))) if isinstance(interval, float) else int(interval)
    val_every_epochs = int(trainer.get("check_val_every_n_epoch") or 1)
    passes = sum(len(train) // every for e in range(epochs) if (e + 1) % val_every_epochs == 0) if val else 0
    tests = bool(cfg.get("test", True)) and bool(test)
    return {
        "train": train,
        "train_batches": total_batches,
        "epochs": epochs,
        "val": val,
        "val_passes": passes,
        "sanity": val[: int(trainer.get("num_sanity_val_steps") or 0)],
        "test": test if tests else [],
        "predict": test if tests and test_predictions.covers(datamodule.task) else [],
    }


# ---- putting it together
def _data_key(cfg) -> str:
    from omegaconf import OmegaConf

    return json.dumps(
        {
            "data": OmegaConf.to_container(cfg.data, resolve=False),
            "task": OmegaConf.to_container(cfg.task, resolve=False),
            "model": cfg.model.backbone,
        },
        sort_keys=True,
        default=str,
    )


def _datamodule(cfg, cache: dict):
    """The job's data module (set up from the tokenization cache); one per data config, reseeded per job."""
    from tunelab.config import instantiate

    key = _data_key(cfg)
    if key not in cache:
        task = instantiate(cfg.task, "task")
        datamodule = instantiate(cfg.data, "data", task=task)
        with contextlib.redirect_stdout(io.StringIO()):
            task.setup(datamodule.tokenizer, datamodule.learn_labels())
            datamodule.setup("fit")
        cache[key] = datamodule
    datamodule = cache[key]
    datamodule.seed = int(cfg.seed)
    return datamodule


def job_seconds(shape: dict, batches: dict) -> dict:
    train = (batches["train"] * max(1, batches["epochs"]))[: batches["train_batches"]]
    train_s = float(np.sum(shape["train"](train))) if train else 0.0
    val_s = batches["val_passes"] * float(np.sum(shape["eval"](batches["val"]))) if batches["val"] else 0.0
    other_eval = batches["sanity"] + batches["test"] + batches["predict"]
    test_s = float(np.sum(shape["eval"](other_eval))) if other_eval else 0.0
    # the profile ran one validation pass and saved once per kind (best at its validation, last at its epoch
    # end); more passes pay their loop overhead again, more epochs save more
    extra_passes = max(0, batches["val_passes"] - 1)
    saves = extra_passes + max(0, batches["epochs"] - 1)
    fixed = shape["fixed"] + extra_passes * shape.get("per_validation", 0.0) + saves * shape["save"]
    return {"train": train_s, "eval": val_s + test_s, "fixed": fixed, "seconds": train_s + val_s + test_s + fixed}


def estimate(argv: list[str]) -> dict:
    started = time.perf_counter()
    import lightning  # noqa: F401  the sweep process pays these imports once, before its first job
    import transformers  # noqa: F401

    from tunelab.run.noise import silence_known_noise

    silence_known_noise()
    startup = time.perf_counter() - started
    jobs = job_overrides(argv)
    swept = [
        k
        for k in dict.fromkeys(o.split("=", 1)[0] for job in jobs for o in job)
        if len({next((o for o in job if o.split("=", 1)[0] == k), "") for job in jobs}) > 1
    ]
    shapes, datamodules, rows = {}, {}, []
    with tempfile.TemporaryDirectory(prefix="tunelab-estimate-") as workdir:
        for number, overrides in enumerate(jobs):
            composed = time.perf_counter()
            cfg = compose_job(overrides)
            compose_s = time.perf_counter() - composed
            key = shape_key(cfg)
            if key not in shapes:
                print(
                    f"profiling shape {len(shapes) + 1} (job {number}: {' '.join(overrides) or 'defaults'}) ...",
                    file=sys.stderr,
                )
                shapes[key] = profile(overrides, Path(workdir))
            shape = shapes[key]
            cost = job_seconds(shape, plan(cfg, _datamodule(cfg, datamodules)))
            rows.append(
                {
                    "job": number,
                    "overrides": [o for o in overrides if o.split("=", 1)[0] in swept],
                    "seconds": round(cost["seconds"] + compose_s, 1),
                    "train_seconds": round(cost["train"], 1),
                    "eval_seconds": round(cost["eval"], 1),
                    "fixed_seconds": round(cost["fixed"], 1),
                    "fixed_parts": {
                        k: round(shape[k], 2) for k in ("before_first_step", "per_validation", "after_fit")
                    },
                    "peak_memory_mb": shape["peak_mb"],
                    "checkpoint_mb": round(shape["checkpoint_mb"], 1),
                }
            )
    total = startup + sum(r["seconds"] for r in rows)
    return {
        "total_seconds": round(total, 1),
        "startup_seconds": round(startup, 1),
        "jobs": rows,
        "shapes": len(shapes),
        "profile_seconds": round(sum(s["profile_seconds"] for s in shapes.values()), 1),
        "disk_mb": round(sum(r["checkpoint_mb"] for r in rows), 1),
        "peak_memory_mb": max((r["peak_memory_mb"] or 0 for r in rows), default=0),
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    result = estimate(argv)
    for row in result["jobs"]:
        print(
            f"job {row['job']:>3}  {' '.join(row['overrides']) or '(defaults)':<40}  {row['seconds']:>8.1f} s"
            f"  (train {row['train_seconds']:.1f}, eval {row['eval_seconds']:.1f}, fixed {row['fixed_seconds']:.1f})"
            f"  peak {row['peak_memory_mb']} MB  checkpoints {row['checkpoint_mb']} MB"
        )
    minutes = result["total_seconds"] / 60
    print(
        f"total: {len(result['jobs'])} jobs, {result['total_seconds']:.0f} s ({minutes:.1f} min) on this machine "
        f"(including {result['startup_seconds']:.0f} s start-up), checkpoints {result['disk_mb'] / 1024:.2f} GB on disk, "
        f"peak memory {result['peak_memory_mb']} MB; profiled {result['shapes']} shape(s) in "
        f"{result['profile_seconds']:.0f} s"
    )
    print(json.dumps(result))
    return 0
