"""Issue 8: tunelab vs the Hugging Face Trainer vs a raw PyTorch loop, on the same fine-tuning work.

    python bench/throughput.py                  # the full run (5 rounds, ~30 min on 2 cores) -> bench/results/
    python bench/throughput.py --quick          # a few steps of everything (~3 min) -> a scratch folder

MiniLM on MR, batch 32, max length 128, AdamW lr 5e-5 (decay 0.01, none on biases/LayerNorm), 10%
linear warm-up, clipping 1.0, the same seed and thread count everywhere. Arms, each in its own
process, interleaved (A B C ... A B C ...) and repeated; medians are reported:

  tunelab_same      `tunelab train` with data.group_by_length=false: random order, dynamic padding
  hf_same           transformers.Trainer on exactly those batches (same order, same padding)
  raw_same          a minimal PyTorch loop on exactly those batches
  tunelab_default   `tunelab train` as shipped: dynamic padding + length-grouped batches
  hf_default        transformers.Trainer as shipped: random order, dynamic padding
  hf_grouped        transformers.Trainer with train_sampling_strategy="group_by_length"

The *_same arms train --warmup + --steps steps; the default arms train a fixed budget (--budget steps,
100 = one epoch) and are then tested (accuracy, evaluation throughput). Also measured: process spawn
to the end of the first optimizer step, `import lightning, transformers` alone, `tunelab --help`,
a second data set-up in the same cache (tokenizes nothing?), and prediction throughput against
transformers.pipeline. Results: <out>/<name>.json (every raw number) and <out>/<name>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the arms' processes (throughput_run.py) and the report (throughput_report.py) live beside this file
from throughput_report import machine, markdown, same_batches, summarise, targets, write_report
from throughput_run import (
    BENCH,
    DEFAULT,
    SAME,
    SETTINGS,
    WARM_IMPORTS,
    arm_warmup,
    rates,
    run_training_arm,
    spawn,
    tunelab_executable,
    wall_of,
)


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few steps of every arm, 1 seed (CI: does it still run?)")
    ap.add_argument("--steps", type=int, help="measured steps of the *_same arms (default 40; quick 4)")
    ap.add_argument("--warmup", type=int, help="steps of the *_same arms not timed (default 5; quick 1)")
    ap.add_argument(
        "--default-warmup", type=int, default=1, help="steps of the default arms not timed (default 1: see arm_warmup)"
    )
    ap.add_argument(
        "--resummarize",
        type=Path,
        metavar="JSON",
        help="recompute the summary, targets and Markdown of a finished run from its raw per-step "
        "clocks (e.g. after a change to how they are summarised); nothing is run",
    )
    ap.add_argument(
        "--budget", type=int, help="training steps of the default arms before the test (default 100; quick 5)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", help="one per round (default 1 2 3 4 5; quick 1)")
    ap.add_argument("--repeats", type=int, help="rounds (default: one per seed); round r uses seeds[r %% len]")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads in every arm")
    ap.add_argument("--predict-rows", type=int, help="test sentences to predict (default 400; quick 64)")
    ap.add_argument("--arms", help=f"comma-separated subset of {','.join([*SAME, *DEFAULT, 'predict'])}")
    ap.add_argument(
        "--lever",
        action="append",
        default=[],
        metavar="NAME:OVERRIDES",
        help="an extra arm <lever-on>+NAME: that tunelab arm with these `tunelab train` overrides "
        "(space-separated), e.g. 'bf16:trainer.precision=bf16-mixed'; interleaved with the others",
    )
    ap.add_argument(
        "--lever-on",
        choices=["tunelab_same", "tunelab_default"],
        default="tunelab_same",
        help="the arm the levers modify (tunelab_default: also tested, for accuracy)",
    )
    ap.add_argument("--tunelab-override", action="append", default=[], help="extra override for every tunelab arm")
    ap.add_argument(
        "--bytecode",
        choices=["cached", "env"],
        default="cached",
        help="cached (default): .pyc in a private folder, as in a normal install; env: as the environment says",
    )
    ap.add_argument("--out", type=Path, help="default bench/results (quick: a scratch folder)")
    ap.add_argument("--name", help="file name stem (default throughput; quick throughput-quick)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (run dirs, logs)")
    args = ap.parse_args(argv)
    quick = args.quick
    args.steps = args.steps or (4 if quick else 40)
    args.warmup = args.warmup or (1 if quick else 5)
    args.budget = args.budget or (5 if quick else 100)
    args.seeds = args.seeds or ([1] if quick else [1, 2, 3, 4, 5])
    args.repeats = args.repeats or len(args.seeds)
    args.predict_rows = args.predict_rows or (64 if quick else 400)
    args.out = args.out or (Path(tempfile.gettempdir()) / "tunelab-bench-quick" if quick else BENCH / "results")
    args.name = args.name or ("throughput-quick" if quick else "throughput")
    wanted = args.arms.split(",") if args.arms else [*SAME, *DEFAULT, "predict"]
    unknown = set(wanted) - {*SAME, *DEFAULT, "predict"}
    if unknown:
        ap.error(f"unknown arms {sorted(unknown)}")
    args.predict = "predict" in wanted
    args.levers = {}
    for lever in args.lever:
        name, sep, overrides = lever.partition(":")
        if not sep or not name or not overrides.strip():
            ap.error(f"--lever wants NAME:OVERRIDES, got {lever!r}")
        args.levers[name] = overrides.split()
    args.arms = [a for a in wanted if a != "predict"] + [f"{args.lever_on}+{name}" for name in args.levers]
    if args.budget <= max(args.warmup, args.default_warmup):
        ap.error("--budget must exceed --warmup")
    return args


def run_predict(args, ctx: dict) -> dict:
    params = {
        "seed": args.seeds[0],
        "rows": args.predict_rows,
        "batch_size": SETTINGS["eval_batch_size"],
        "repeats": args.repeats,
        "work_dir": str(ctx["work"]),
    }
    predict, _ = spawn(
        [sys.executable, str(BENCH / "throughput_arms.py"), "predict", json.dumps(params)],
        ctx["work"] / "predict.json",
        ctx["work"] / "predict.log",
        ctx,
    )
    predict["samples_per_s"] = {k: predict["rows"] / statistics.median(v) for k, v in predict["seconds"].items()}
    return predict


def summarise_report(report: dict) -> None:
    """Summary, start-up and targets from a report's raw numbers (runs, cache, predict, raw_startup)."""
    runs, cache, predict = report["runs"], report["cache"], report["predict"]
    for arm, rs in runs.items():  # rates again from the per-step clocks, with this file's warm-up rule
        for r in rs:
            r.update(rates(r, arm_warmup(arm, report["settings"])))
    summary = summarise(runs)
    tl = summary.get("tunelab_default") or summary.get("tunelab_same") or {}  # the default command's if it ran
    tl_first = tl.get("first_step_s")
    help_s, imports = report["raw_startup"]["help_runs_s"], report["raw_startup"]["bare_import_runs_s"]
    startup = {
        "help_s": statistics.median(help_s),
        "help_runs_s": help_s,
        "bare_import_s": statistics.median(imports),
        "bare_import_runs_s": imports,
        "tunelab_first_step_s": tl_first,
        # the part of the start-up that is tunelab's doing: all but the first step's own compute
        "tunelab_train_start_s": tl.get("train_start_s"),
        # the floor: a raw PyTorch loop pays the same imports, model load and first step
        "raw_first_step_s": summary.get("raw_same", {}).get("first_step_s"),
    }
    extra = {
        "help_s": startup["help_s"],
        "retokenized_rows": cache["second"]["rows_tokenized"],
        "first_step_over_import": tl_first / startup["bare_import_s"] if tl_first else None,
        "predict_over_pipeline": predict["samples_per_s"]["tunelab"]
        / max(predict["samples_per_s"]["pipeline_same_batch"], predict["samples_per_s"]["pipeline_default_batch"])
        if predict
        else None,
    }
    report.update(
        complete=True,
        summary=summary,
        same_batches=same_batches(runs),
        startup=startup,
        targets=targets(summary, extra, runs),
    )


def resummarize(path: Path) -> int:
    report = json.loads(path.read_text())
    report["settings"].setdefault("default_warmup", 1)
    if "raw_startup" not in report:  # written before raw_startup existed: the runs are under startup
        report["raw_startup"] = {k: report["startup"][k] for k in ("help_runs_s", "bare_import_runs_s")}
    summarise_report(report)
    write_report(report, path.parent, path.stem)
    print(markdown(report))
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    if args.resummarize:
        return resummarize(args.resummarize)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tunelab-bench-"))
    print(f"work folder {work}", flush=True)
    ctx = {
        "work": work,
        "threads": args.threads,
        "tunelab_overrides": args.tunelab_override,
        "levers": args.levers,
        "pycache": work / "pycache" if args.bytecode == "cached" else None,
    }
    info = machine(args.threads)
    info["bytecode"] = (
        "cached in a private PYTHONPYCACHEPREFIX"
        if ctx["pycache"]
        else "as the environment: "
        + (
            "not cached, every import compiles (PYTHONDONTWRITEBYTECODE)"
            if os.environ.get("PYTHONDONTWRITEBYTECODE")
            else "cached"
        )
    )
    report = {
        "name": args.name,
        "complete": False,
        "machine": info,
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "settings": {
            **SETTINGS,
            "max_length": 128,
            "quick": args.quick,
            "steps": args.steps,
            "warmup": args.warmup,
            "default_warmup": args.default_warmup,
            "budget": args.budget,
            "seeds": args.seeds,
            "repeats": args.repeats,
            "arms": args.arms,
            "levers": args.levers,
            "lever_on": args.lever_on,
            "tunelab_overrides": args.tunelab_override,
            "predict_rows": args.predict_rows,
        },
    }
    wall_of([sys.executable, "-c", WARM_IMPORTS], ctx)  # bytecode compiled before anything is timed
    # data in the cache first (and the second-set-up check); the arms read its paths
    cache, _ = spawn(
        [sys.executable, str(BENCH / "throughput_arms.py"), "cache", json.dumps({"work_dir": str(work)})],
        work / "cache.json",
        work / "cache.log",
        ctx,
    )
    ctx.update(cache=cache, same_optim="adamw_torch_fused" if cache["adamw_fused"] else "adamw_torch")
    report["cache"] = cache
    help_s = [wall_of([*tunelab_executable(), "--help"], ctx) for _ in range(5)]
    runs: dict[str, list[dict]] = {a: [] for a in args.arms}
    imports = []
    for rnd in range(args.repeats):
        seed = args.seeds[rnd % len(args.seeds)]
        print(f"round {rnd + 1}/{args.repeats}, seed {seed}", flush=True)
        imports.append(wall_of([sys.executable, "-c", "import lightning, transformers"], ctx))
        for arm in args.arms:  # interleaved: every arm once per round
            runs[arm].append(run_training_arm(arm, rnd, seed, args, ctx))
        report["runs"] = runs
        write_report(report, args.out, args.name)  # a partial record survives a crash
    predict = run_predict(args, ctx) if args.predict else None
    report.update(predict=predict, raw_startup={"help_runs_s": help_s, "bare_import_runs_s": imports})
    summarise_report(report)
    report["wall_s"] = time.perf_counter() - started
    report["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(report, args.out, args.name)
    print("\n" + markdown(report))
    print(f"wrote {args.out / args.name}.json and .md in {report['wall_s']:.0f} s", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
