"""bench/throughput.py's arms: the environment, command line and clocks of one arm's process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SETTINGS = {"batch_size": 32, "eval_batch_size": 64, "lr": 5e-5, "weight_decay": 0.01, "warmup": 0.1}
SAME = ("tunelab_same", "hf_same", "raw_same")
DEFAULT = ("tunelab_default", "hf_default", "hf_grouped")


# ---- running one arm
# Imported once before anything is timed, so that no arm pays for compiling bytecode (see --bytecode).
WARM_IMPORTS = (
    "import lightning, transformers, datasets, hydra, rich, accelerate, torchmetrics; "
    "from transformers import Trainer, pipeline, AutoModelForSequenceClassification; "
    "from transformers.models.bert import modeling_bert; "
    "import tunelab.commands.train, tunelab.model.module, tunelab.data, tunelab.tasks, tunelab.commands.predict, tunelab.callbacks"
)


def arm_env(ctx: dict, **extra) -> dict:
    """The same environment for every process: threads, offline, and the bytecode setting."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(ctx["threads"]),
        "MKL_NUM_THREADS": str(ctx["threads"]),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(BENCH), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]),
        **extra,
    }
    if ctx["pycache"]:
        # A normal install has .pyc files. Where PYTHONDONTWRITEBYTECODE is set (as on the machine this was
        # written on) every import compiles from source, which adds ~10 s to each process start. Cache the
        # bytecode in a private folder instead (nothing is written into the installed packages).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(ctx["pycache"])
    return env


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (user + nice + system + irq), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn(cmd: list[str], result: Path, log: Path, ctx: dict) -> tuple[dict, float]:
    """Run an arm in a fresh process; returns what it wrote to $BENCH_RESULT and its wall time.

    Also records how much CPU *other* processes took while it ran (the machine's busy time minus the
    arm's own CPU time): a load average counts the arm's own threads and cannot tell a quiet machine
    from a shared one; this can (result["others_cpu_share"], a fraction of all cores)."""
    result.unlink(missing_ok=True)
    env = arm_env(ctx, BENCH_RESULT=str(result))
    env["BENCH_SPAWN_TIME"] = repr(time.time())  # the arm's start-up clock starts here
    busy0, own0 = busy_cpu_seconds(), own_children_cpu_seconds()
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=3600).returncode
    wall = time.perf_counter() - started
    busy1, own1 = busy_cpu_seconds(), own_children_cpu_seconds()
    if code != 0 or not result.exists():
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {code}); log {log}:\n{tail}")
    res = json.loads(result.read_text())
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0) - (own1 - own0))
        res["others_cpu_share"] = others / (wall * (os.cpu_count() or 1))
    return res, wall


def arm_command(arm: str, seed: int, steps: int, test: bool, ctx: dict, run_dir: Path) -> list[str]:
    if arm.startswith("tunelab"):
        base, _, lever = arm.partition("+")  # tunelab_same+NAME: a lever, that arm plus its overrides
        # the real command; only what a benchmark must change: the step budget, no validation or
        # checkpoints (the HF arms save none; without ours Lightning would add its own), and a timing callback
        return [
            sys.executable,
            "-m",
            "tunelab.cli",
            "train",
            f"seed={seed}",
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "+trainer.limit_val_batches=0",
            "~callbacks.model_checkpoint",
            "~callbacks.last_checkpoint",
            "trainer.enable_checkpointing=false",
            "~callbacks.early_stopping",
            f"data.group_by_length={base == 'tunelab_default'}",
            f"test={test}",
            f"hydra.run.dir={run_dir}",
            "+callbacks.bench_timer._target_=throughput_arms.step_timer",
            *ctx["tunelab_overrides"],
            *ctx["levers"].get(lever, []),
        ]
    sampling = arm.split("_", 1)[1]
    params = {
        **SETTINGS,
        "seed": seed,
        "steps": steps,
        "test": test,
        "sampling": sampling,
        "threads": ctx["threads"],
        "splits_dir": ctx["cache"]["splits_dir"],
        "model_dir": ctx["cache"]["model_dir"],
        "work_dir": str(run_dir),
        # identical settings use tunelab's AdamW implementation; hf_default/hf_grouped keep the Trainer's own
        "optim": ctx["same_optim"] if sampling == "same" else "adamw_torch_fused",
    }
    return [
        sys.executable,
        str(BENCH / "throughput_arms.py"),
        "hf" if arm.startswith("hf") else "raw",
        json.dumps(params),
    ]


def rates(res: dict, warmup: int) -> dict:
    """Throughput over the steps after the warm-up: steps warmup+1..n, from the end of step `warmup`."""
    ends = res["step_end"]
    batches = res["batches"][: len(ends)]  # the Trainer's loader collates one batch ahead
    if len(ends) <= warmup:
        raise RuntimeError(f"{res['arm']}: {len(ends)} steps, not more than the {warmup} warm-up steps")
    seconds = ends[-1] - ends[warmup - 1]
    rows, real, padded = (sum(b[i] for b in batches[warmup:]) for i in range(3))
    return {
        "samples_per_s": rows / seconds,
        "real_tokens_per_s": real / seconds,
        "padded_tokens_per_s": padded / seconds,
        "pad_fraction": 1 - real / padded,
        "measured_steps": len(ends) - warmup,
        "measured_s": seconds,
        "measured_rows": rows,
        "measured_real_tokens": real,
    }


def arm_warmup(arm: str, settings: dict) -> int:
    """Steps not timed. The *_same arms step on identical batches, so any warm-up compares equal work.
    The default arms do not: each orders one epoch its own way, and the rows that fall in the untimed
    steps leave the timed window. Both length-grouped samplers put the longest batch first, and
    Trainer's then runs its mega-batches longest to shortest, so excluding 5 steps dropped its 5 longest
    batches but tunelab's longest and 4 random ones (3.7% fewer real tokens left in the Trainer's
    window). Timing everything after the first step (one-time costs, the longest batch in both) leaves
    the same rows, to within 1% of real tokens, in every default arm (`measured_real_tokens`)."""
    return (
        settings.get("default_warmup", settings["warmup"]) if arm.partition("+")[0] in DEFAULT else settings["warmup"]
    )


def run_training_arm(arm: str, rnd: int, seed: int, args, ctx: dict) -> dict:
    test = arm.partition("+")[0] in DEFAULT  # tunelab_default+NAME (a lever) is tested too
    steps = args.budget if test else args.warmup + args.steps
    run_dir = ctx["work"] / f"{arm}-r{rnd}"
    res, wall = spawn(
        arm_command(arm, seed, steps, test, ctx, run_dir),
        ctx["work"] / f"{arm}-r{rnd}.json",
        ctx["work"] / f"{arm}-r{rnd}.log",
        ctx,
    )
    if arm.startswith("tunelab") and test:  # accuracy as `tunelab train` reports it
        metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
        res["eval"]["accuracy"] = metrics["test/accuracy"]
    res.update(rates(res, arm_warmup(arm, vars(args))), seed=seed, round=rnd, wall_s=wall)
    print(
        f"  {arm:<16} seed {seed}: {res['samples_per_s']:6.1f} samples/s, first step {res['first_step_s']:5.1f} s"
        + (f", test acc {res['eval']['accuracy']:.3f}" if test else ""),
        flush=True,
    )
    return res


def wall_of(cmd: list[str], ctx: dict) -> float:
    env = arm_env(ctx)
    started = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - started


def tunelab_executable() -> list[str]:
    script = Path(sys.executable).parent / "tunelab"  # the console script, as users type it
    return [str(script)] if script.exists() else [sys.executable, "-m", "tunelab.cli"]


# ---- summary and targets
