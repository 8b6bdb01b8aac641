"""``tunelab estimate <the arguments of a tunelab train -m sweep>``: what the sweep will cost, before it runs.

1. Compose every job of the grid as the basic sweeper would (the command line's comma lists and the
   ``hydra.sweeper.params`` of a ``sweeps=`` config, cartesian product).
2. Profile each distinct shape (model config incl. PEFT method and frozen layers, max length, batch
   size, precision, task) once: the real ``tunelab train`` of its first job on the real data, cut to
   a few batches per split (``limit_*_batches``), timing every batch and every checkpoint save.
   Batch time is fitted as ``a + b * padded tokens`` (train and evaluation separately); everything
   else the short run spent (model load, data setup, checkpoint writes and reloads, test and
   prediction start-up) is the shape's fixed cost.
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

PROFILE_TRAIN_BATCHES, PROFILE_EVAL_BATCHES = 6, 3


def job_overrides(argv: list[str]) -> list[list[str]]:
    """The override list of every job of ``tunelab train -m ARGV``, in the sweep's order."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tunelab.config import config_dir

    args = [a for a in argv if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in args):
        raise TunelabError(f"tunelab estimate takes the overrides of a sweep, not flags ({[a for a in args if a.startswith('-')][0]}).")
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(args)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=fixed, return_hydra_config=True)
        if "optuna" in str(cfg.hydra.sweeper.get("_target_", "")).lower():
            raise TunelabError("tunelab estimate plans grid sweeps (the basic sweeper); an Optuna search picks its "
                               "trials as it runs. Estimate one trial: tunelab estimate <its overrides> (no -m).")
        params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    all_overrides = parser.parse_overrides([*params, *args])
    return [list(job) for batch in BasicSweeper.split_arguments(all_overrides, None) for job in batch]


def compose_job(overrides: list[str], extra: tuple[str, ...] = ()):
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=[*overrides, *extra])


def shape_key(cfg) -> str:
    from omegaconf import OmegaConf

    def plain(node):
        return OmegaConf.to_container(node, resolve=False) if node is not None else None

    return json.dumps({"model": plain(cfg.model), "max_length": cfg.data.max_length, "batch": cfg.data.batch_size,
                       "eval_batch": cfg.data.get("eval_batch_size"), "precision": str(cfg.trainer.get("precision")),
                       "task": plain(cfg.task)}, sort_keys=True, default=str)


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
    from tunelab import test_predictions

    trainer = cfg.trainer
    train = _batch_tokens(datamodule.train_dataloader())[:_limited(10**12, trainer.get("limit_train_batches"))]
    val = _batch_tokens(datamodule.val_dataloader())[:_limited(10**12, trainer.get("limit_val_batches"))]
    test = _batch_tokens(datamodule.test_dataloader())[:_limited(10**12, trainer.get("limit_test_batches"))]
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
    return {"train": train, "train_batches": total_batches, "epochs": epochs, "val": val, "val_passes": passes,
            "sanity": val[:int(trainer.get("num_sanity_val_steps") or 0)], "test": test if tests else [],
            "predict": test if tests and test_predictions._codec(datamodule.task) is not None else []}


# ---- profiling one shape
def _step_timer_class():
    """A Lightning callback (added by an override to the profile run): each batch's seconds and padded
    tokens, each checkpoint save's seconds. Built on first use, so importing this module stays light."""
    import lightning as L

    class StepTimer(L.Callback):
        current = None

        def __init__(self):
            self.train, self.eval, self.saves, self._start = [], [], [], None
            StepTimer.current = self

        def setup(self, trainer, pl_module, stage):
            if getattr(trainer, "_estimate_timed", False):
                return
            original = trainer.save_checkpoint

            def timed(*args, **kwargs):
                started = time.perf_counter()
                original(*args, **kwargs)
                self.saves.append(time.perf_counter() - started)

            trainer.save_checkpoint, trainer._estimate_timed = timed, True

        def _begin(self, batch):
            self._start = (time.perf_counter(), int(batch["input_ids"].numel()))

        def _end(self, into):
            started, tokens = self._start
            into.append((tokens, time.perf_counter() - started))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._begin(batch)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._end(self.train)

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            self._begin(batch)

        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            self._end(self.eval)

        on_test_batch_start = on_predict_batch_start = on_validation_batch_start
        on_test_batch_end = on_predict_batch_end = on_validation_batch_end

    StepTimer.__qualname__ = "StepTimer"  # picklable by name
    return StepTimer


_CLASSES: dict = {}


def __getattr__(name: str):
    if name == "StepTimer":  # Hydra's _target_ looks the class up by name
        return _CLASSES.setdefault(name, _step_timer_class())
    raise AttributeError(name)


def _fit(points: list[tuple[int, float]]):
    """Seconds per batch as a + b * tokens (least squares; through the origin when the lengths do not vary)."""
    x, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    if len(points) >= 3 and np.ptp(x) > 0.2 * x.mean():
        b, a = np.polyfit(x, y, 1)
        if a >= 0 and b >= 0:
            return lambda tokens: a + b * np.asarray(tokens, float)
    rate = y.sum() / x.sum()
    return lambda tokens: rate * np.asarray(tokens, float)


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets the peak RSS (VmHWM) to the current RSS


def _peak_memory_mb(fallback: float | None) -> float | None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return fallback


@contextlib.contextmanager
def _quiet_loggers():
    """The profile run's Lightning/transformers messages are the short run's, not the user's: hidden."""
    import logging

    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def profile(overrides: list[str], workdir: Path) -> dict:
    """The shape's first job, run for real on a few batches of every split."""
    from tunelab.train import train

    out = workdir / f"profile-{len(list(workdir.iterdir()))}"
    cfg = compose_job(overrides, (f"paths.output_dir={out}", f"++trainer.limit_train_batches={PROFILE_TRAIN_BATCHES}",
                                  f"++trainer.limit_val_batches={PROFILE_EVAL_BATCHES}",
                                  f"++trainer.limit_test_batches={PROFILE_EVAL_BATCHES}",
                                  f"++trainer.limit_predict_batches={PROFILE_EVAL_BATCHES}",
                                  "trainer.max_epochs=1", "trainer.max_steps=-1", "++trainer.val_check_interval=1.0",
                                  "+callbacks.estimate_timer._target_=tunelab.sweeps.estimate.StepTimer",
                                  "print_config=false"))
    devices = cfg.trainer.get("devices", 1)
    if str(devices) not in ("1", "[0]") or cfg.trainer.get("num_nodes", 1) != 1:
        # Lightning would start the other ranks by re-running this command line: `tunelab estimate` itself
        raise TunelabError(f"tunelab estimate profiles one process; this sweep's jobs run on trainer.devices={devices}. "
                           "Estimate with trainer=cpu (or trainer.devices=1) and divide the train time by the devices.")
    _reset_peak_memory()
    log = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _quiet_loggers():
        train(cfg)
    wall = time.perf_counter() - started
    timer = _CLASSES["StepTimer"].current
    summary = json.loads((out / "metrics.json").read_text())
    checkpoints = sum(p.stat().st_size for p in (out / "checkpoints").rglob("*") if p.is_file()) \
        if (out / "checkpoints").exists() else 0
    measured = sum(t for _, t in timer.train) + sum(t for _, t in timer.eval)
    return {"train": _fit(timer.train[1:] or timer.train), "eval": _fit(timer.eval[1:] or timer.eval),
            "save": float(np.mean(timer.saves)) if timer.saves else 0.0, "fixed": max(0.0, wall - measured),
            "peak_mb": _peak_memory_mb(summary.get("peak_memory_mb")), "checkpoint_mb": checkpoints / 2**20,
            "profile_seconds": wall}


# ---- putting it together
def _data_key(cfg) -> str:
    from omegaconf import OmegaConf

    return json.dumps({"data": OmegaConf.to_container(cfg.data, resolve=False), "task": OmegaConf.to_container(
        cfg.task, resolve=False), "model": cfg.model.backbone}, sort_keys=True, default=str)


def _datamodule(cfg, cache: dict):
    """The job's data module (set up from the tokenization cache); one per data config, reseeded per job."""
    from tunelab.config import instantiate

    key = _data_key(cfg)
    if key not in cache:
        task = instantiate(cfg.task, "task")
        datamodule = instantiate(cfg.data, "data", task=task)
        with contextlib.redirect_stdout(io.StringIO()):
            datamodule.prepare_data()
            datamodule.setup("fit")
        cache[key] = datamodule
    datamodule = cache[key]
    datamodule.seed = int(cfg.seed)
    return datamodule


def job_seconds(shape: dict, batches: dict) -> dict:
    train = (batches["train"] * max(1, batches["epochs"]))[:batches["train_batches"]]
    train_s = float(np.sum(shape["train"](train))) if train else 0.0
    val_s = batches["val_passes"] * float(np.sum(shape["eval"](batches["val"]))) if batches["val"] else 0.0
    other_eval = batches["sanity"] + batches["test"] + batches["predict"]
    test_s = float(np.sum(shape["eval"](other_eval))) if other_eval else 0.0
    # the profile saved once per kind (best at its validation, last at its epoch end); more epochs save more
    saves = max(0, batches["val_passes"] - 1) + max(0, batches["epochs"] - 1)
    fixed = shape["fixed"] + saves * shape["save"]
    return {"train": train_s, "eval": val_s + test_s, "fixed": fixed, "seconds": train_s + val_s + test_s + fixed}


def estimate(argv: list[str]) -> dict:
    started = time.perf_counter()
    import lightning  # noqa: F401  the sweep process pays these imports once, before its first job
    import transformers  # noqa: F401

    from tunelab.noise import silence_known_noise

    silence_known_noise()
    startup = time.perf_counter() - started
    jobs = job_overrides(argv)
    swept = [k for k in dict.fromkeys(o.split("=", 1)[0] for job in jobs for o in job)
             if len({next((o for o in job if o.split("=", 1)[0] == k), "") for job in jobs}) > 1]
    shapes, datamodules, rows = {}, {}, []
    with tempfile.TemporaryDirectory(prefix="tunelab-estimate-") as workdir:
        for number, overrides in enumerate(jobs):
            composed = time.perf_counter()
            cfg = compose_job(overrides)
            compose_s = time.perf_counter() - composed
            key = shape_key(cfg)
            if key not in shapes:
                print(f"profiling shape {len(shapes) + 1} (job {number}: {' '.join(overrides) or 'defaults'}) ...",
                      file=sys.stderr)
                shapes[key] = profile(overrides, Path(workdir))
            shape = shapes[key]
            cost = job_seconds(shape, plan(cfg, _datamodule(cfg, datamodules)))
            rows.append({"job": number, "overrides": [o for o in overrides if o.split("=", 1)[0] in swept],
                         "seconds": round(cost["seconds"] + compose_s, 1), "train_seconds": round(cost["train"], 1),
                         "eval_seconds": round(cost["eval"], 1), "fixed_seconds": round(cost["fixed"], 1),
                         "peak_memory_mb": shape["peak_mb"], "checkpoint_mb": round(shape["checkpoint_mb"], 1)})
    total = startup + sum(r["seconds"] for r in rows)
    return {"total_seconds": round(total, 1), "startup_seconds": round(startup, 1), "jobs": rows,
            "shapes": len(shapes), "profile_seconds": round(sum(s["profile_seconds"] for s in shapes.values()), 1),
            "disk_mb": round(sum(r["checkpoint_mb"] for r in rows), 1),
            "peak_memory_mb": max((r["peak_memory_mb"] or 0 for r in rows), default=0)}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    result = estimate(argv)
    for row in result["jobs"]:
        print(f"job {row['job']:>3}  {' '.join(row['overrides']) or '(defaults)':<40}  {row['seconds']:>8.1f} s"
              f"  (train {row['train_seconds']:.1f}, eval {row['eval_seconds']:.1f}, fixed {row['fixed_seconds']:.1f})"
              f"  peak {row['peak_memory_mb']} MB  checkpoints {row['checkpoint_mb']} MB")
    minutes = result["total_seconds"] / 60
    print(f"total: {len(result['jobs'])} jobs, {result['total_seconds']:.0f} s ({minutes:.1f} min) on this machine "
          f"(including {result['startup_seconds']:.0f} s start-up), checkpoints {result['disk_mb'] / 1024:.2f} GB on disk, "
          f"peak memory {result['peak_memory_mb']} MB; profiled {result['shapes']} shape(s) in "
          f"{result['profile_seconds']:.0f} s")
    print(json.dumps(result))
    return 0
