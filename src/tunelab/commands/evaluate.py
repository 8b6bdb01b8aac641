"""``tunelab eval RUN [--split test|validation] [OVERRIDES]``: score a finished run's best checkpoint on a whole split.

The run's own config (``RUN/config.yaml``) builds the task, the data and the model; OVERRIDES change
it the way they change ``tunelab train``: a group (``trainer=ddp``) is composed from conf/ and
replaces the run's, a key (``trainer.devices=2``, ``data.eval_batch_size=8``, ``+key=...``,
``~key``) is set on top. The run's ``limit_*_batches``, ``fast_dev_run`` and ``overfit_batches``
are dropped: every row of the split is scored, once, on any number of processes
(``trainer=ddp trainer.devices=N``): the processes' metric states are gathered and the rows the
distributed sampler repeats to even out the ranks are not counted (TuneModule._eval_step).

Prints the metrics, writes them to ``RUN/eval/<split>.json`` and ends with one line: the metrics
as a JSON object (``tunelab eval RUN | tail -1 | jq``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tunelab.errors import TunelabError

SPLITS = {"test": "test", "validation": "val"}  # split -> metric prefix
# trainer keys that make a run score part of a split (debug=limit, debug=fast_dev_run, ...)
PARTIAL_KEYS = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "fast_dev_run",
    "overfit_batches",
)


def eval_config(run_dir: Path, overrides: list[str]):
    """The run's resolved config with ``overrides`` applied (group options composed from conf/)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict

    from tunelab.config import config_dir

    cfg = OmegaConf.load(run_dir / "config.yaml")
    with open_dict(cfg.trainer):
        for key in PARTIAL_KEYS:
            cfg.trainer.pop(key, None)
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise TunelabError(f"Cannot read the overrides {overrides}: {err}") from None
    for o in parsed:
        if o.is_sweep_override():
            raise TunelabError(f"'{o.input_line}' is a sweep; tunelab eval scores one configuration.")
    groups = [o for o in parsed if (Path(config_dir()) / o.key_or_group).is_dir() and not o.is_delete()]
    if groups:
        with initialize_config_dir(config_dir(), version_base="1.3"):
            try:
                fresh = compose("train", overrides=[o.input_line for o in groups])
            except HydraException as err:  # Hydra's message names the group and its options
                raise TunelabError(f"Cannot compose {[o.input_line for o in groups]}: {err}") from None
        for o in groups:
            if o.key_or_group not in fresh:
                raise TunelabError(
                    f"'{o.input_line}' changes settings outside '{o.key_or_group}' (a global "
                    "option such as experiment= or debug=); tunelab eval takes groups like "
                    "trainer=ddp or data=..., and keys like trainer.devices=2."
                )
            with open_dict(cfg):
                cfg[o.key_or_group] = fresh[o.key_or_group]  # its ${...} resolve against this run's config
    for o in parsed:
        if o in groups:
            continue
        key = o.key_or_group
        present = OmegaConf.select(cfg, key, default="<missing>") != "<missing>"
        with open_dict(cfg):
            if o.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(cfg, parent) if parent else cfg
                if not present or node is None:
                    raise TunelabError(f"'{o.input_line}': the run's config has no '{key}'.")
                node.pop(leaf)
            elif o.is_add() and present:
                raise TunelabError(f"'{o.input_line}': '{key}' is already set; use {key}=... (or ++{key}=...).")
            elif not (o.is_add() or o.is_force_add()) and not present:
                raise TunelabError(f"'{o.input_line}': the run's config has no '{key}'; add it with +{key}=...")
            else:
                OmegaConf.update(cfg, key, o.value(), force_add=True)
    return cfg


def evaluate(run: str, split: str = "test", overrides: list[str] | None = None) -> dict:
    """Score ``run``'s best checkpoint on ``split``; returns the record written to RUN/eval/<split>.json."""
    from tunelab.config import instantiate
    from tunelab.run.noise import silence_known_noise
    from tunelab.run.record import load_run, resolve_run_dir

    if split not in SPLITS:
        raise TunelabError(f"--split must be one of {list(SPLITS)}, got '{split}'.")
    silence_known_noise()
    run_dir = resolve_run_dir(run)
    out_dir = run_dir / "eval"  # the trainer's root: a seq2seq/causal-LM validation writes its samples there
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = eval_config(run_dir, list(overrides or []))
    _, module, _, _ = load_run(str(run_dir), cfg=cfg)
    datamodule = instantiate(cfg.data, "data", task=module.task, tokenizer=cfg.model.backbone)
    trainer = instantiate(
        cfg.trainer, "trainer", callbacks=[], logger=False, enable_checkpointing=False, default_root_dir=str(out_dir)
    )
    started = time.perf_counter()
    score = trainer.test if split == "test" else trainer.validate
    results = score(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in sorted(results[0].items())}
    summary = json.loads((run_dir / "metrics.json").read_text())
    record = {
        "run": str(run_dir),
        "split": split,
        "checkpoint": summary.get("best_checkpoint"),
        "processes": trainer.world_size,
        "rows": len(datamodule.splits[split]),
        "seconds": round(time.perf_counter() - started, 2),
        "metrics": metrics,
        "overrides": list(overrides or []),
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if trainer.is_global_zero:
        tmp = out_dir / f".{split}.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, out_dir / f"{split}.json")  # readers never see half a file
    return record


@contextmanager
def ranks_run_eval(argv: list[str]):
    """Lightning's DDP launcher starts ranks 1..N-1 by re-running this process's command line, or, once a
    Hydra job ran in this process (``tunelab train`` in-process), that job's command. Either way the
    other ranks must run this same ``tunelab eval``; the world is ended and the launch variables
    restored afterwards (tunelab.run.distributed.job_world), so an in-process caller can go on."""
    import lightning.fabric.strategies.launchers.subprocess_script as fabric_launcher
    import lightning.pytorch.strategies.launchers.subprocess_script as trainer_launcher

    from tunelab.run.distributed import job_world

    command = [sys.executable, "-m", "tunelab", "eval", *argv]
    saved = [
        (m, name, getattr(m, name))
        for m in (fabric_launcher, trainer_launcher)
        for name in ("_basic_subprocess_cmd", "_hydra_subprocess_cmd")
    ]
    for module in (fabric_launcher, trainer_launcher):
        module._basic_subprocess_cmd = lambda: list(command)
        module._hydra_subprocess_cmd = lambda local_rank: (list(command), os.getcwd())
    try:
        with job_world():
            yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tunelab eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a finished run directory (or 'latest')")
    parser.add_argument("--split", default="test", choices=list(SPLITS), help="the split to score (default: test)")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides of the run's config, e.g. trainer=ddp trainer.devices=2 data.eval_batch_size=16",
    )
    args = parser.parse_intermixed_args(argv)

    from tunelab.run.distributed import global_rank

    if global_rank() != 0:
        # Lightning's DDP launcher starts the other ranks with this process's stdout: keep it rank 0's
        # alone, so its last line stays the metrics
        sys.stdout = sys.stderr
    from tunelab.run.record import resolve_run_dir

    run = str(resolve_run_dir(args.run).resolve())  # the other ranks score this run, even if 'latest' moves on
    with ranks_run_eval([run, "--split", args.split, *args.overrides]):
        record = evaluate(run, split=args.split, overrides=args.overrides)
    if global_rank() == 0:
        width = max((len(k) for k in record["metrics"]), default=0)
        print(
            f"\n{record['split']} split of {record['run']} ({record['rows']} rows, {record['processes']} "
            f"process{'es' if record['processes'] > 1 else ''}, checkpoint {record['checkpoint']})"
        )
        for key, value in record["metrics"].items():
            print(f"  {key:<{width}}  {value:.6f}")
        print(f"written to {Path(record['run']) / 'eval' / (record['split'] + '.json')}")
        print(json.dumps(record["metrics"]), flush=True)
    return 0
