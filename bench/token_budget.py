"""Issue 20: token-budget batches (data.max_tokens) vs length-grouped fixed batches of 32, MiniLM on MR.

    python bench/token_budget.py             # one epoch per arm, --rounds 1 (~10 min on 2 shared cores)
    python bench/token_budget.py --quick     # 256 training rows: the plumbing only

Arms, each a `tunelab train model=minilm data=mr trainer.max_epochs=1` in its own process, interleaved
(A B, B A, ...) when --rounds > 1:

  fixed_32      data.batch_size=32, length-grouped (the default)
  max_tokens    data.max_tokens=T, T chosen so the mean training batch is about 32 rows (the same steps)

Measured: training samples/s (training rows / metrics.json's fit_seconds, which also holds one
validation pass, the same in both arms), peak RSS of the training process (os.wait4), metrics.json's
peak_memory_mb, val/test accuracy after the epoch; and, without training, from the samplers on the
tokenized lengths: batches per epoch, mean and range of rows per batch, the padding share (padded /
all tokens of the padded batches), the largest padded batch (rows x longest, what memory follows).
Results: bench/results/token_budget.{json,md} (--quick: a scratch folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BASE = ["model=minilm", "data=mr", "trainer.max_epochs=1", "~callbacks.progress_bar", "print_config=false"]


def train_lengths(overrides: list[str]) -> np.ndarray:
    """The training split's token lengths, tokenized as the arms' runs tokenize it (MiniLM, max_length 128)."""
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir, instantiate

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=.", "model=minilm", "data=mr", *overrides])
    dm = instantiate(cfg.data, "data", task=instantiate(cfg.task, "task"))
    dm.task.setup(dm.tokenizer, dm.learn_labels())
    dm.setup("fit")
    return np.asarray(dm.splits["train"]["length"])


def batch_stats(lengths: np.ndarray, batches: list) -> dict:
    sizes = np.array([len(b) for b in batches])
    padded = np.array([len(b) * int(lengths[b].max()) for b in batches])
    return {
        "batches": len(batches),
        "rows_mean": round(float(sizes.mean()), 2),
        "rows_min": int(sizes.min()),
        "rows_max": int(sizes.max()),
        "padding_share": round(float(1 - lengths.sum() / padded.sum()), 4),
        "largest_padded_batch": int(padded.max()),
    }


def sampler_stats(lengths: np.ndarray, max_tokens: int, seed: int) -> dict:
    from tunelab.data.samplers import LengthGroupedSampler
    from tunelab.data.token_budget import TokenBudgetBatchSampler

    order = list(LengthGroupedSampler(lengths, 32, seed=seed))
    fixed = [np.array(order[i : i + 32]) for i in range(0, len(order), 32)]
    budget = [np.array(b) for b in TokenBudgetBatchSampler(lengths, max_tokens, seed=seed)]
    return {"fixed_32": batch_stats(lengths, fixed), "max_tokens": batch_stats(lengths, budget)}


def budget_for_mean_batch(lengths: np.ndarray, rows: float, seed: int) -> int:
    """The smallest budget whose batches average at least ``rows`` rows (batch count <= rows / 32's)."""
    from tunelab.data.token_budget import TokenBudgetBatchSampler

    target = -(-len(lengths) // int(rows))
    low, high = int(lengths.max()), int(lengths.max()) * int(rows) * 2
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if len(TokenBudgetBatchSampler(lengths, mid, seed=seed)) > target else (low, mid)
    return low


def run_arm(name: str, overrides: list[str], run_dir: Path, threads: int) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "tunelab", "train", *BASE, *overrides, f"hydra.run.dir={run_dir}"]
    log = open(run_dir.with_suffix(".log"), "w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}); see {run_dir.with_suffix('.log')}")
    summary = json.loads((run_dir / "metrics.json").read_text())
    rows = summary["data"]["sizes"]["train"]
    return {
        "samples_per_s": round(rows / summary["fit_seconds"], 2),
        "fit_seconds": summary["fit_seconds"],
        "steps": summary["global_steps"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "peak_memory_mb": summary["peak_memory_mb"],
        "val_accuracy": summary["metrics"].get("val/accuracy"),
        "test_accuracy": summary["metrics"].get("test/accuracy"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 training rows, 64 validation/test: plumbing only")
    ap.add_argument("--rounds", type=int, default=1, help="rounds alternate the order: A B, B A, ...")
    ap.add_argument("--arms", nargs="+", default=["fixed_32", "max_tokens"], help="the first round's order")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sizes = ["data.max_samples={train: 256, validation: 64, test: 64}"] if args.quick else []
    lengths = train_lengths(sizes)
    max_tokens = budget_for_mean_batch(lengths, 32, args.seed)
    arms = {
        "fixed_32": ["data.batch_size=32"],
        "max_tokens": [f"data.max_tokens={max_tokens}"],
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix="token-budget-")) if args.quick else BENCH / "results")
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {name: [] for name in args.arms}
    with tempfile.TemporaryDirectory(prefix="token-budget-runs-") as scratch:
        for r in range(args.rounds):
            for name in args.arms if r % 2 == 0 else args.arms[::-1]:
                overrides = arms[name]
                run_dir = Path(scratch) / f"{name}-{r}"
                result = run_arm(name, [*overrides, f"seed={args.seed}", *sizes], run_dir, args.threads)
                print(name, r, result, flush=True)
                runs[name].append(result)
    result = {
        "max_tokens": max_tokens,
        "rows": len(lengths),
        "samplers": sampler_stats(lengths, max_tokens, args.seed),
        "runs": runs,
        "medians": {n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in runs.items()},
    }
    (out / "token_budget.json").write_text(json.dumps(result, indent=2))
    (out / "token_budget.md").write_text(table(result, args))
    print(table(result, args))


def table(result: dict, args) -> str:
    s, m = result["samplers"], result["medians"]
    lines = [
        f"MiniLM on MR ({result['rows']} training rows), one epoch, seed {args.seed}, {args.threads} threads, "
        f"median of {args.rounds} round(s); max_tokens={result['max_tokens']}.",
        "",
        "| arm | batches | rows/batch (min-max) | padding | largest batch (tokens) | samples/s | peak RSS MB "
        "| val acc | test acc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in [n for n in ("fixed_32", "max_tokens") if n in m]:
        b, r = s[name], m[name]
        lines.append(
            f"| {name} | {b['batches']} | {b['rows_mean']} ({b['rows_min']}-{b['rows_max']}) | "
            f"{b['padding_share']:.1%} | {b['largest_padded_batch']} | {r['samples_per_s']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
