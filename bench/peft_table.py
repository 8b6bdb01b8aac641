"""The LoRA-paper-shaped table (experiments/mr_peft_*): run every row x seed, then summarise.

    OMP_NUM_THREADS=1 nice -n 10 python bench/peft_table.py run --out /tmp/peft-table --seeds 1 2 3 4 5
    python bench/peft_table.py table --out /tmp/peft-table      # the markdown table alone

One thread per run: on the shared 2-core machine a 2-thread torch run spent most of its time
waiting at OpenMP barriers (about 10x slower under load). Each run is its own process, so its
peak memory (max RSS) is its own; this is the same set of runs as `tunelab train -m sweeps=peft_methods`. Rows are run seed by seed, so an interrupted
table still has whole seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROWS = {  # experiment -> row label
    "mr_peft_full": "full fine-tuning",
    "mr_peft_lora": "LoRA r=8 (query, value)",
    "mr_peft_ia3": "IA3",
    "mr_peft_bitfit": "BitFit",
    "mr_peft_head_only": "head only (linear probe)",
    "mr_peft_freeze4": "freeze bottom 4 of 6 blocks",
    "mr_peft_layer_decay": "layer-wise LR decay 0.8",
    "mr_peft_fgm": "full fine-tuning + FGM",
}


def run(out: Path, seeds: list[int], rows: list[str]) -> None:
    for seed in seeds:
        for row in rows:
            run_dir = out / row / f"seed{seed}"
            if (run_dir / "metrics.json").exists():
                continue
            started = time.time()
            cmd = [
                sys.executable,
                "-m",
                "tunelab",
                "train",
                f"experiment={row}",
                f"seed={seed}",
                f"hydra.run.dir={run_dir}",
                "~callbacks.progress_bar",
                "print_config=false",
            ]
            with open(out / f"{row}-seed{seed}.log", "w") as log:
                code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
            print(f"{row} seed {seed}: exit {code}, {time.time() - started:.0f}s", flush=True)


def table(out: Path) -> str:
    lines = [
        "| method | trainable params | % | test accuracy, median (min-max) | seeds | fit time s | peak RSS MB | checkpoint MB |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row, label in ROWS.items():
        runs = [json.loads(p.read_text()) for p in sorted((out / row).glob("seed*/metrics.json"))]
        if not runs:
            lines.append(f"| {label} | | | not run | 0 | | | |")
            continue
        acc = [r["metrics"]["test/accuracy"] * 100 for r in runs]
        params = runs[0]["parameters"]
        med = statistics.median
        lines.append(
            f"| {label} | {params['trainable']:,} | {params['trainable_percent']:.2f} | {med(acc):.1f} "
            f"({min(acc):.1f}-{max(acc):.1f}) | {len(runs)} | {med(r['fit_seconds'] for r in runs):.0f} | "
            f"{med(r['peak_memory_mb'] for r in runs):.0f} | {med(r['checkpoint_mb'] for r in runs):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "table"])
    parser.add_argument("--out", type=Path, default=Path("outputs/peft-table"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "run":
        run(args.out, args.seeds, args.rows)
    print(table(args.out))


if __name__ == "__main__":
    main()
