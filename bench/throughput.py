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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SAME = ("tunelab_same", "hf_same", "raw_same")
DEFAULT = ("tunelab_default", "hf_default", "hf_grouped")
SETTINGS = {"batch_size": 32, "eval_batch_size": 64, "lr": 5e-5, "weight_decay": 0.01, "warmup": 0.1}


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
def median_of(runs: list[dict], key: str, sub: str | None = None):
    values = [(r.get(sub) or {}).get(key) if sub else r.get(key) for r in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict]]) -> dict:
    keys = (
        "samples_per_s",
        "real_tokens_per_s",
        "padded_tokens_per_s",
        "pad_fraction",
        "first_step_s",
        "train_start_s",
        "peak_rss_mb",
        "measured_real_tokens",
    )
    out = {}
    for arm, rs in runs.items():
        out[arm] = {k: median_of(rs, k) for k in keys}
        out[arm]["runs"] = len(rs)
        out[arm]["attn_implementation"] = rs[0].get("attn_implementation")
        out[arm]["threads"] = rs[0].get("threads")
        if any("eval" in r for r in rs):
            out[arm]["test_accuracy"] = median_of(rs, "accuracy", "eval")
            out[arm]["eval_samples_per_s"] = statistics.median(r["eval"]["rows"] / r["eval"]["seconds"] for r in rs)
            if "rows_in_input_order" in rs[0]["eval"]:
                out[arm]["predict_rows_in_input_order"] = all(r["eval"]["rows_in_input_order"] for r in rs)
    return out


def same_batches(runs: dict[str, list[dict]]) -> bool | None:
    """Did the *_same arms step on exactly the same batches (rows, real and padded tokens) in every round?"""
    arms = [runs[a] for a in SAME if a in runs]
    if len(arms) < 2:
        return None
    return all(len({json.dumps(r["batches"][: len(r["step_end"])]) for r in rnd}) == 1 for rnd in zip(*arms))


def paired_step_difference(runs: dict[str, list[dict]], a: str, b: str, warmup: int) -> dict | None:
    """a's minus b's duration of the same timed step on the same batch, over every round (ms): the
    per-step cost of one framework over the other, with the machine's slow spells mostly paired out."""
    if a not in runs or b not in runs:
        return None

    def durations(run: dict) -> list[float]:  # each timed step, from the end of the one before
        ends = run["step_end"][warmup - 1 :]
        return [y - x for x, y in zip(ends, ends[1:])]

    diffs = [(x - y) * 1000 for ra, rb in zip(runs[a], runs[b]) for x, y in zip(durations(ra), durations(rb))]
    return (
        {"median_ms": statistics.median(diffs), "mean_ms": statistics.mean(diffs), "steps": len(diffs)}
        if diffs
        else None
    )


def round_ratios(runs: dict[str, list[dict]], a: str, b: str) -> list[float]:
    """a / b samples/s within each interleaved round: a paired view of the noise behind the ratio of medians."""
    if a not in runs or b not in runs:
        return []
    return [ra["samples_per_s"] / rb["samples_per_s"] for ra, rb in zip(runs[a], runs[b])]


def targets(summary: dict, extra: dict, runs: dict | None = None) -> list[dict]:
    def ratio(a, b, key="samples_per_s"):
        return summary[a][key] / summary[b][key] if a in summary and b in summary else None

    rows = [
        ("tunelab_same / hf_same, samples/s (identical batches)", ratio("tunelab_same", "hf_same"), ">=", 1.0),
        ("tunelab_same / raw_same, samples/s (identical batches)", ratio("tunelab_same", "raw_same"), ">=", 0.97),
        ("tunelab_default / hf_default, samples/s", ratio("tunelab_default", "hf_default"), ">=", 1.8),
        ("tunelab_default / hf_grouped, samples/s", ratio("tunelab_default", "hf_grouped"), ">=", 1.0),
    ]
    for other in ("hf_default", "hf_grouped"):  # within 1 point: tunelab may be better, not worse by > 0.01
        if "tunelab_default" in summary and other in summary:
            diff = summary["tunelab_default"]["test_accuracy"] - summary[other]["test_accuracy"]
            rows.append((f"test accuracy tunelab_default - {other} (median of seeds)", diff, ">=", -0.01))
    rows += [
        ("`tunelab --help`, s", extra.get("help_s"), "<", 1.0),
        ("rows tokenized by a second set-up of the same data", extra.get("retokenized_rows"), "==", 0),
        (
            "tunelab spawn -> first step / bare `import lightning, transformers`",
            extra.get("first_step_over_import"),
            "<=",
            1.5,
        ),
        ("tunelab predict / best pipeline(), samples/s", extra.get("predict_over_pipeline"), ">=", 1.0),
    ]
    check = {">=": lambda m, g: m >= g, "<=": lambda m, g: m <= g, "<": lambda m, g: m < g, "==": lambda m, g: m == g}
    out = [
        {"target": t, "measured": m, "goal": f"{op} {g}", "met": None if m is None else bool(check[op](m, g))}
        for t, m, op, g in rows
    ]
    for row, (a, b) in zip(
        out,
        [
            ("tunelab_same", "hf_same"),
            ("tunelab_same", "raw_same"),
            ("tunelab_default", "hf_default"),
            ("tunelab_default", "hf_grouped"),
        ],
    ):
        row["per_round"] = round_ratios(runs or {}, a, b)
    return out


def machine(threads: int) -> dict:
    from importlib.metadata import version

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        if Path("/proc/cpuinfo").exists()
        else "unknown"
    )
    mem = (
        next(
            (
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0,
        )
        if Path("/proc/meminfo").exists()
        else 0
    )
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem / 2**20, 1),
        "threads": threads,
        "python": sys.version.split()[0],
        "tunelab_commit": git.stdout.strip() or None,
        "versions": {
            p: version(p)
            for p in ("torch", "transformers", "lightning", "tokenizers", "datasets", "accelerate", "hydra-core")
        },
    }


# ---- the report
def fmt(value, digits=2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        f"# Throughput: tunelab vs transformers.Trainer vs raw PyTorch ({report['name']})",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['threads']} torch threads; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; tunelab {m['tunelab_commit']}; "
        f"bytecode {m['bytecode']}.",
        "",
        f"MiniLM on MR, batch {s['batch_size']}, max length 128, AdamW lr {s['lr']}, seeds {s['seeds']}, "
        f"{s['repeats']} interleaved round(s); *_same arms: {s['warmup']} warm-up + {s['steps']} measured steps; "
        f"default arms: {s['budget']} steps (timed after step {s.get('default_warmup', s['warmup'])}) then test. Load average {report['load_average']['start']} at the start, "
        f"{report['load_average']['end']} at the end{' (quick mode: plumbing, not numbers)' if s['quick'] else ''}.",
        "",
    ]
    shares = {
        f"{arm} r{r['round'] + 1}": r["others_cpu_share"]
        for arm, rs in report.get("runs", {}).items()
        for r in rs
        if r.get("others_cpu_share") is not None
    }
    if shares:
        worst = max(shares, key=shares.get)
        lines += [
            f"Other processes' CPU while an arm ran (the machine's busy time minus the arm's own, share of all "
            f"cores): median {statistics.median(shares.values()) * 100:.1f}%, worst {shares[worst] * 100:.1f}% "
            f"({worst}).",
            "",
        ]
        if shares[worst] > 0.05 and not s["quick"]:
            lines += [
                "**Other jobs took CPU during some arms.** With more threads than idle cores, torch steps wait "
                "at OpenMP barriers and those rounds are noise; rerun on a quiet machine (or with "
                "`--threads 1`).",
                "",
            ]
    lines += ["| target | measured | goal | met | per round |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else ("✓" if t["met"] else "✗")
        per_round = ", ".join(f"{x:.3f}" for x in t.get("per_round") or [])
        lines.append(f"| {t['target']} | {fmt(t['measured'], 3)} | {t['goal']} | {met} | {per_round} |")
    lines += [
        "",
        "| arm | samples/s | real tok/s | padded tok/s | padding | timed real tokens | spawn -> train start s "
        "| spawn -> 1st step s | peak RSS MB | test acc | eval samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, v in report["summary"].items():
        lines.append(
            f"| {arm} | {fmt(v['samples_per_s'], 1)} | {fmt(v['real_tokens_per_s'], 0)} | "
            f"{fmt(v['padded_tokens_per_s'], 0)} | {fmt(v['pad_fraction'] * 100, 0)}% | {fmt(v.get('measured_real_tokens'), 0)} | "
            f"{fmt(v['train_start_s'], 1)} | "
            f"{fmt(v['first_step_s'], 1)} | {fmt(v['peak_rss_mb'], 0)} | {fmt(v.get('test_accuracy'), 3)} | "
            f"{fmt(v.get('eval_samples_per_s'), 1)} |"
        )
    for name, overrides in s.get("levers", {}).items():
        base = report["summary"].get(s["lever_on"])
        lever = report["summary"][f"{s['lever_on']}+{name}"]
        if base:
            lines.append(
                f"\nLever `{name}` ({' '.join(overrides)}): {fmt(lever['samples_per_s'] / base['samples_per_s'], 3)}x "
                f"{s['lever_on']} samples/s"
                + (
                    f", test accuracy {fmt(lever['test_accuracy'], 3)} vs {fmt(base['test_accuracy'], 3)}."
                    if "test_accuracy" in base
                    else "."
                )
            )
    st, c = report["startup"], report["cache"]
    paired = [
        (b, paired_step_difference(report["runs"], "tunelab_same", b, s["warmup"])) for b in ("hf_same", "raw_same")
    ]
    paired = [(b, d) for b, d in paired if d]
    if paired:
        lines += [
            "",
            "Paired per-step cost on identical batches (tunelab_same's step minus the other's, same step, "
            "every round): "
            + "; ".join(
                f"vs {b} median {d['median_ms']:+.1f} ms, mean {d['mean_ms']:+.1f} ms over {d['steps']} steps"
                for b, d in paired
            )
            + ".",
        ]
    lines += [
        "",
        f"Identical batches in the *_same arms: {fmt(report['same_batches'])}. "
        f"`Trainer.predict()` rows in input order under group_by_length: "
        f"{fmt(report['summary'].get('hf_grouped', {}).get('predict_rows_in_input_order'))}.",
        "",
        f"Start-up: `tunelab --help` {fmt(st['help_s'], 3)} s; bare `import lightning, transformers` "
        f"{fmt(st['bare_import_s'], 2)} s; tunelab spawn -> train start {fmt(st['tunelab_train_start_s'], 2)} s "
        f"({fmt(st['tunelab_train_start_s'] / st['bare_import_s'] if st['tunelab_train_start_s'] else None, 2)}x the "
        f"bare import), spawn -> first step {fmt(st['tunelab_first_step_s'], 2)} s; the raw loop's spawn -> first "
        f"step {fmt(st['raw_first_step_s'], 2)} s ({fmt(st['raw_first_step_s'] / st['bare_import_s'] if st['raw_first_step_s'] else None, 2)}x "
        "the bare import).",
        "",
        f"Data cache: first set-up {fmt(c['first']['seconds'], 2)} s ({c['first']['rows_tokenized']} rows tokenized), "
        f"second {fmt(c['second']['seconds'], 2)} s ({c['second']['rows_tokenized']} rows tokenized, cache hit: "
        f"{fmt(c['second']['hit'])}).",
        "",
    ]
    p = report["predict"]
    if p:
        lines += [
            f"Prediction, {p['rows']} MR test sentences ({p['threads']} threads), samples/s: tunelab predict_rows "
            f"(batch {p['batch_size']}, length-sorted) {fmt(p['samples_per_s']['tunelab'], 1)}; pipeline() batch "
            f"{p['batch_size']} {fmt(p['samples_per_s']['pipeline_same_batch'], 1)}; pipeline() default batch (1) "
            f"{fmt(p['samples_per_s']['pipeline_default_batch'], 1)}. Same labels as pipeline() in input order: "
            f"{fmt(p['labels_match_pipeline'])} (max score difference {p['max_score_diff']:.1e}).",
            "",
        ]
    return "\n".join(lines)


def write_report(report: dict, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    if report.get("complete"):
        (out / f"{name}.md").write_text(markdown(report))


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
