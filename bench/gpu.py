"""Issue 20: GPU performance. bf16 fine-tuning on MR, tunelab vs transformers.Trainer, and padding-free packing.

    python bench/gpu.py --models minilm mpnet      # the real run, on a GPU -> bench/results/gpu.{json,md}
    python bench/gpu.py --quick                    # plumbing only (a tiny random BERT, a few CPU steps)

Per model, each arm a fresh process on the same batches (tunelab's seeded order, dynamic padding,
batch 32, max length 128), the same precision (bf16 autocast: Lightning's bf16-mixed, the Trainer's
bf16=True) and attention (--attn, default sdpa), with and without torch.compile:

  <model>:tunelab[+compile]   `tunelab train model=<model> model.compile=... model.attn_implementation=...`
  <model>:hf[+compile]        transformers.Trainer (torch_compile=...) on exactly those batches

and the causal-LM head on MR sentences, padded batches vs padding-free packing (transformers'
DataCollatorWithFlattening: one row, position ids restarting per sentence), on the CPU and the GPU:

  packing:<device>:padded / packing:<device>:packed

Reported: samples/s, real tokens/s, MFU = 6 x parameters x real tokens/s / the device's bf16 peak,
peak memory (CUDA allocator peak; on a CPU the process's RSS), spawn -> first step (compiling is in there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gpu_arms import tiny_bert
from throughput_report import fmt, machine
from throughput_run import BENCH, SETTINGS, arm_command, rates, spawn

# dense bf16 tensor-core peaks (TFLOPS, no sparsity), from NVIDIA's data sheets; first match wins
PEAK_BF16_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)
CPU_NOMINAL_TFLOPS = 1.0  # a placeholder so that the CPU plumbing computes the same column; not a peak


def mfu(params: int, tokens: float, seconds: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: a training step costs ~6 FLOPs per parameter per token (2 forward, 4 backward)."""
    return 6 * params * tokens / seconds / peak_flops


def peak_flops(device_name: str, override_tflops: float | None = None) -> tuple[float, str]:
    if override_tflops:
        return override_tflops * 1e12, f"{override_tflops} TFLOPS (--peak-tflops)"
    for name, tflops in PEAK_BF16_TFLOPS:
        if name in device_name:
            return tflops * 1e12, f"{tflops} TFLOPS ({name} dense bf16)"
    if device_name == "cpu":
        return CPU_NOMINAL_TFLOPS * 1e12, f"{CPU_NOMINAL_TFLOPS} TFLOPS (nominal: MFU on a CPU is plumbing only)"
    raise SystemExit(f"unknown bf16 peak for {device_name!r}: pass --peak-tflops")


def summary_of(runs: list[dict], warmup: int, peak: float) -> dict:
    out = runs  # each run keeps its rates in the report, next to the clocks they came from
    for res in runs:
        res.update(rates(res, warmup))
        res["mfu"] = mfu(res["params"], res["measured_real_tokens"], res["measured_s"], peak)
    keys = ("samples_per_s", "real_tokens_per_s", "padded_tokens_per_s", "pad_fraction", "mfu", "peak_memory_mb")
    row = {k: statistics.median(r[k] for r in out) for k in keys}
    row["first_step_s"] = statistics.median(r["first_step_s"] for r in out)
    row.update({k: out[0].get(k) for k in ("params", "memory_kind", "attn_implementation")})
    if "losses" in out[0]:
        row["first_loss"] = out[0]["losses"][0]
    return row


def model_arms(model: str, args, ctx: dict) -> dict[str, dict]:
    """Arm name -> the command that runs it, for one classification backbone."""
    backbone = [f"model.backbone={ctx['tiny']}"] if model == "tiny" else [f"model={model}"]
    prep, _ = spawn(
        [sys.executable, str(BENCH / "gpu_arms.py"), "prepare", json.dumps({"overrides": backbone})],
        ctx["work"] / f"prepare-{model}.json",
        ctx["work"] / f"prepare-{model}.log",
        ctx,
    )
    ctx["device"], ctx["device_name"] = prep["device"], prep["device_name"]
    device = ["trainer=gpu"] if prep["device"] == "cuda" else []
    arms = {}
    for compiled in (False,) if args.no_compile else (False, True):
        tag = "+compile" if compiled else ""
        lever = f"{model}{tag}"
        ctx["levers"][lever] = [
            *backbone,
            *device,
            f"trainer.precision={args.precision}",
            f"model.compile={compiled}",
            f"model.attn_implementation={args.attn}",
            f"data.batch_size={args.batch_size}",
            "callbacks.bench_timer._target_=gpu_arms.gpu_step_timer",
        ]
        arms[f"{model}:tunelab{tag}"] = {"lever": lever}
        params = {
            **SETTINGS,
            "arm": f"{model}:hf{tag}",
            "batch_size": args.batch_size,
            "seed": args.seed,
            "steps": args.warmup + args.steps,
            "threads": args.threads,
            "splits_dir": prep["splits_dir"],
            "model_dir": prep["model_dir"],
            "device": prep["device"],
            "precision": args.precision,
            "compile": compiled,
            "attn": args.attn,
            # tunelab's optimizer: fused AdamW, but per-tensor under bf16-mixed + clipping (TuneModule)
            "optim": "adamw_torch_fused" if prep["adamw_fused"] and args.precision == "32-true" else "adamw_torch",
        }
        arms[f"{model}:hf{tag}"] = {"hf": params}
    return arms


def packing_arms(args, devices: list[str]) -> dict[str, dict]:
    return {
        f"packing:{device}:{mode}": {
            "packing": {
                "mode": mode,
                "device": device,
                "lm": args.lm,
                "seed": args.seed,
                "steps": args.warmup + args.steps,
                "batch_size": args.batch_size,
                "max_length": 128,
                "lr": SETTINGS["lr"],
                "precision": args.precision,
                "threads": args.threads,
            }
        }
        for device in devices
        for mode in ("padded", "packed")
    }


def run_arm(name: str, spec: dict, rnd: int, args, ctx: dict) -> dict:
    stem = f"{name.replace(':', '-').replace('+', '-')}-r{rnd}"
    run_dir = ctx["work"] / stem
    if "lever" in spec:
        cmd = arm_command(f"tunelab_same+{spec['lever']}", args.seed, args.warmup + args.steps, False, ctx, run_dir)
    else:
        kind = "hf" if "hf" in spec else "packing"
        cmd = [sys.executable, str(BENCH / "gpu_arms.py"), kind, json.dumps({**spec[kind], "work_dir": str(run_dir)})]
    res, wall = spawn(cmd, ctx["work"] / f"{stem}.json", ctx["work"] / f"{stem}.log", ctx)
    res.update(wall_s=wall, round=rnd)
    print(f"  {name:<28} {len(res['step_end'])} steps, first step {res['first_step_s']:6.1f} s", flush=True)
    return res


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        f"# GPU performance ({report['name']})",
        "",
        f"{report['device_name']} ({report['device']}); {m['cpu']}, {m['cores']} cores; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; tunelab {m['tunelab_commit']}. bf16 peak for MFU: {report['peak']}.",
        "",
        f"MR, batch {s['batch_size']}, max length 128, precision {s['precision']}, attention {s['attn']}, "
        f"{s['warmup']} warm-up + {s['steps']} timed steps, {s['repeats']} round(s), medians"
        + (" (quick mode: plumbing, not numbers)." if s["quick"] else "."),
        "",
        "| arm | params M | samples/s | real tok/s | padding | MFU | peak memory MB | spawn -> 1st step s | first loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, v in report["summary"].items():
        lines.append(
            f"| {arm} | {v['params'] / 1e6:.1f} | {fmt(v['samples_per_s'], 1)} | {fmt(v['real_tokens_per_s'], 0)} | "
            f"{v['pad_fraction'] * 100:.0f}% | {v['mfu'] * 100:.2f}% | {fmt(v['peak_memory_mb'], 0)} "
            f"({v['memory_kind']}) | {fmt(v['first_step_s'], 1)} | {fmt(v.get('first_loss'), 4)} |"
        )
    lines += [
        "",
        f"Identical batches in every arm of a model: {report['same_batches']}. Largest difference between the "
        f"padded and the packed arm's loss at the same step: {report['packed_loss_max_diff']}.",
    ]
    return "\n".join(lines) + "\n"


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="plumbing only: a tiny random BERT, a few CPU steps")
    ap.add_argument("--models", nargs="+", help="classification backbones (default minilm mpnet; quick: tiny)")
    ap.add_argument("--steps", type=int, help="timed steps (default 50; quick 3)")
    ap.add_argument("--warmup", type=int, help="untimed steps, compiling included (default 10; quick 2)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds")
    ap.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile arms (minutes of compiling on a CPU)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=SETTINGS["batch_size"])
    ap.add_argument("--precision", default="bf16-mixed", choices=["bf16-mixed", "32-true"])
    ap.add_argument("--attn", default="sdpa", help="model.attn_implementation of every arm (sdpa, eager, ...)")
    ap.add_argument("--lm", help="causal LM of the packing arms: random:LAYERSxHIDDEN or a backbone (smollm2)")
    ap.add_argument("--packing-devices", nargs="+", help="default: cpu, and cuda when there is a GPU")
    ap.add_argument("--peak-tflops", type=float, help="the device's bf16 peak, where the built-in table has none")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the core count)")
    ap.add_argument("--out", type=Path, help="default bench/results (quick: a scratch folder)")
    ap.add_argument("--name", help="file stem (default gpu; quick gpu-quick)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (run dirs, logs)")
    args = ap.parse_args(argv)
    q = args.quick
    args.models = args.models or (["tiny"] if q else ["minilm", "mpnet"])
    args.steps, args.warmup = args.steps or (3 if q else 50), args.warmup or (2 if q else 10)
    args.lm = args.lm or ("random:2x32" if q else "random:12x768")
    args.out = args.out or (Path(tempfile.gettempdir()) / "tunelab-bench-quick" if q else BENCH / "results")
    args.name = args.name or ("gpu-quick" if q else "gpu")
    args.threads = args.threads or os.cpu_count()
    return args


def main(argv=None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tunelab-gpu-bench-"))
    ctx = {"work": work, "threads": args.threads, "tunelab_overrides": [], "levers": {}, "pycache": work / "pycache"}
    if "tiny" in args.models:
        ctx["tiny"] = tiny_bert(work / "tiny-bert")
    arms = {}
    for model in args.models:
        arms.update(model_arms(model, args, ctx))
    devices = args.packing_devices or (["cpu", "cuda"] if ctx["device"] == "cuda" else ["cpu"])
    arms.update(packing_arms(args, devices))
    runs: dict[str, list[dict]] = {a: [] for a in arms}
    for rnd in range(args.repeats):
        print(f"round {rnd + 1}/{args.repeats}", flush=True)
        for name, spec in arms.items():
            runs[name].append(run_arm(name, spec, rnd, args, ctx))
    peak, peak_source = peak_flops(ctx["device_name"], args.peak_tflops)
    cpu_peak = peak_flops("cpu", None)[0]
    summary = {}
    for name, rs in runs.items():
        on_cpu = name.startswith("packing:cpu") or ctx["device"] == "cpu"
        summary[name] = summary_of(rs, args.warmup, cpu_peak if on_cpu else peak)
    report = {
        "name": args.name,
        "machine": machine(args.threads),
        "device": ctx["device"],
        "device_name": ctx["device_name"],
        "peak": peak_source,
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("out",)}, "batch_size": args.batch_size},
        "summary": summary,
        # each model's arms stepped on identical batches (rows, real and padded tokens of every step)
        "same_batches": {
            m: len(
                {
                    json.dumps(rs[0]["batches"][: len(rs[0]["step_end"])])
                    for a, rs in runs.items()
                    if a.startswith(f"{m}:")
                }
            )
            == 1
            for m in args.models
        },
        # packed and padded batches of the same rows from the same init: the same loss at every step
        "packed_loss_max_diff": {
            d: max(
                abs(x - y)
                for x, y in zip(runs[f"packing:{d}:padded"][0]["losses"], runs[f"packing:{d}:packed"][0]["losses"])
            )
            for d in devices
        },
        "runs": runs,
        "wall_s": time.perf_counter() - started,
    }
    report["settings"] = json.loads(json.dumps(report["settings"], default=str))
    assert all(math.isfinite(v["mfu"]) for v in summary.values())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print("\n" + markdown(report))
    print(f"wrote {args.out / args.name}.json and .md in {report['wall_s']:.0f} s", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
