"""``tunelab reproduce experiment=NAME [--smoke] [OVERRIDES]``: does a committed experiment still give its number?

Runs the experiment once per seed in ``expected.seeds``, takes the median of ``expected.metric``
over the seeds (and its spread), and prints PASS when ``|median - expected.value| <= tolerance``,
FAIL otherwise (exit 1). ``--smoke`` runs a tiny version (one seed, a few batches) that checks the
whole path and the metric's presence, not the number: that is what CI runs.

Runs go to ``outputs/reproduce/<experiment>/<time>/seed<N>``; a summary lands in ``reproduce.json`` there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tunelab.errors import TunelabError

SMOKE = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "data.max_samples.train=64",
    "data.max_samples.validation=32",
    "data.max_samples.test=32",
    "~callbacks.progress_bar",
    "print_config=false",
]


def expected_of(experiment: str, overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        try:
            cfg = compose("train", overrides=[f"experiment={experiment}", "paths.output_dir=.", *overrides])
        except Exception as err:  # Hydra's own messages are clear: unknown experiment, bad override
            raise TunelabError(f"Cannot compose experiment '{experiment}': {err}") from None
    expected = OmegaConf.to_container(cfg.get("expected") or {}, resolve=True)
    missing = [k for k in ("metric", "value", "tolerance", "source", "seeds") if k not in expected]
    if missing:
        raise TunelabError(
            f"experiments/{experiment}.yaml declares no expected.{missing[0]}; every experiment "
            "says what it should reach: expected: {metric, value, tolerance, source, seeds}."
        )
    return expected


def verdict(values: list[float], expected: dict) -> dict:
    """Median and spread of one metric over seeds, and PASS/FAIL against the expected value."""
    median = statistics.median(values)
    result = {
        "metric": expected["metric"],
        "values": values,
        "median": median,
        "spread": {"min": min(values), "max": max(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0},
        "expected": expected["value"],
        "tolerance": expected["tolerance"],
        "source": expected["source"],
    }
    if expected["value"] is None:
        result["status"] = "NO EXPECTED VALUE"
    else:
        result["status"] = "PASS" if abs(median - float(expected["value"])) <= float(expected["tolerance"]) else "FAIL"
    return result


def run_seed(experiment: str, seed: int, run_dir: Path, overrides: list[str]) -> dict:
    from tunelab.commands.train import main as train_main

    try:
        train_main([f"experiment={experiment}", f"seed={seed}", f"hydra.run.dir={run_dir}", *overrides])
    except SystemExit as exit_:  # Hydra exits on a failed job; the run directory says why
        if exit_.code:
            raise TunelabError(f"The run for seed {seed} failed; see {run_dir}/run.json.") from None
    return json.loads((run_dir / "metrics.json").read_text())


def reproduce(
    experiment: str, smoke: bool = False, overrides: list[str] | None = None, out: Path | None = None
) -> dict:
    import os

    overrides = list(overrides or []) + (SMOKE if smoke else [])
    expected = expected_of(experiment, overrides)
    seeds = list(expected["seeds"])[:1] if smoke else list(expected["seeds"])
    root = Path(
        out
        or Path(os.environ.get("TUNELAB_OUTPUTS", "outputs"))
        / "reproduce"
        / experiment.replace("/", "_")
        / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    values = []
    for seed in seeds:
        metrics = run_seed(experiment, seed, root / f"seed{seed}", overrides)["metrics"]
        if expected["metric"] not in metrics:
            raise TunelabError(
                f"The run reported no '{expected['metric']}' (it has {sorted(metrics)}). "
                f"Fix expected.metric in experiments/{experiment}.yaml."
            )
        values.append(metrics[expected["metric"]])
    result = verdict(values, expected)
    if smoke:
        result["status"] = "SMOKE OK"  # a tiny run says nothing about the number, only that the path works
    result.update(experiment=experiment, seeds=seeds, smoke=smoke, runs=str(root))
    root.mkdir(parents=True, exist_ok=True)
    (root / "reproduce.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tunelab reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", help="experiment=NAME (a file in experiments/)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (e.g. trainer=gpu)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run of one seed: checks the path, not the number")
    parser.add_argument("--out", help="folder for the runs (default outputs/reproduce/NAME/TIME)")
    args = parser.parse_intermixed_args(argv)
    name = args.experiment.split("=", 1)[1] if args.experiment.startswith("experiment=") else args.experiment
    result = reproduce(name, smoke=args.smoke, overrides=args.overrides, out=Path(args.out) if args.out else None)
    values = ", ".join(f"{v:.4f}" for v in result["values"])
    print(f"\n{name}: {result['metric']} over seeds {result['seeds']}: {values}")
    print(
        f"median {result['median']:.4f} (min {result['spread']['min']:.4f}, max {result['spread']['max']:.4f}, "
        f"std {result['spread']['std']:.4f}); expected {result['expected']} +- {result['tolerance']} "
        f"({result['source']})"
    )
    print(result["status"])
    return 0 if result["status"] in ("PASS", "SMOKE OK") else 1
