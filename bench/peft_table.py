"""The LoRA-paper protocol (experiments/mr_peft_*): each method's LR chosen on validation, then seeds.

    OMP_NUM_THREADS=1 python bench/peft_table.py run --out /tmp/peft-protocol --workers 2
    python bench/peft_table.py table --out /tmp/peft-protocol      # the grid and the table alone

Stage 1 runs every (method, LR) of GRID with seed 1 and picks the LR with the best validation
accuracy (ties: the smaller LR); test accuracy is never looked at to choose. Stage 2 runs the
chosen LR over the method's seeds (5 for full fine-tuning and LoRA, 3 for the others). One thread
per run, `--workers` runs at a time: on the 2-core machine a 2-thread torch run spends much of its
time at OpenMP barriers. Every run is its own process (its peak RSS is its own) and the runner is
resumable: a run with a metrics.json is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

# experiment -> (row label, LR grid, seeds[, the row whose chosen LR it borrows when the grid is None])
FIVE, THREE = [1, 2, 3, 4, 5], [1, 2, 3]
GRID = {
    "mr_peft_full": ("full fine-tuning", [2e-5, 5e-5, 1e-4], FIVE),
    "mr_peft_lora": ("LoRA r=8 (query, value)", [5e-4, 1e-3, 2e-3], FIVE),
    # a diagnosis of LoRA's gap, not a separately tuned method: LoRA's chosen LR, the pooler trainable
    "mr_peft_lora_pooler": ("LoRA r=8 + trainable pooler", None, FIVE, "mr_peft_lora"),
    "mr_peft_lora_all_linear": ("LoRA r=8, every linear layer", None, FIVE, "mr_peft_lora"),
    "mr_peft_ia3": ("IA3", [2e-3, 5e-3, 1e-2], THREE),
    "mr_peft_bitfit": ("BitFit", [5e-4, 1e-3, 2e-3], THREE),
    "mr_peft_head_only": ("head only (linear probe)", [2e-3, 5e-3, 1e-2], THREE),
    "mr_peft_freeze4": ("freeze bottom 4 of 6 blocks", [2e-5, 5e-5, 1e-4], THREE),
    "mr_peft_layer_decay": ("layer-wise LR decay 0.8", [2e-5, 5e-5, 1e-4], THREE),
    "mr_peft_fgm": ("full fine-tuning + FGM", [2e-5, 5e-5, 1e-4], THREE),
}


def run_dir(out: Path, row: str, lr: float, seed: int) -> Path:
    return out / row / f"lr{lr:g}" / f"seed{seed}"


def metrics(path: Path) -> dict | None:
    file = path / "metrics.json"
    return json.loads(file.read_text()) if file.exists() else None


def train(out: Path, row: str, lr: float, seed: int) -> None:
    where = run_dir(out, row, lr, seed)
    if metrics(where):
        return
    cmd = [sys.executable, "-m", "tunelab", "train", f"experiment={row}", f"seed={seed}", f"optimizer.lr={lr}"]
    cmd += [f"hydra.run.dir={where}", "~callbacks.progress_bar", "print_config=false"]
    started = time.time()
    where.mkdir(parents=True, exist_ok=True)
    with open(where.parent / f"seed{seed}.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        (where / "runner.pid").write_text(str(child.pid))
        code = child.wait()
    print(f"{row} lr {lr:g} seed {seed}: exit {code}, {time.time() - started:.0f}s", flush=True)


def running(where: Path) -> bool:
    """A run another runner (a restarted one) still has in flight: its pid file names a live process."""
    try:
        os.kill(int((where / "runner.pid").read_text()), 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return not metrics(where)


def chosen_lr(out: Path, row: str) -> float | None:
    """The grid LR with the best seed-1 validation accuracy, None until the whole grid has run."""
    scores = []
    lrs = GRID[row][1] if GRID[row][1] is not None else [chosen_lr(out, GRID[row][3])]
    if None in lrs:
        return None
    for lr in lrs:
        m = metrics(run_dir(out, row, lr, 1))
        if m is None:
            return None
        scores.append((-m["metrics"]["val/accuracy"], lr))
    return min(scores)[1]


def next_job(out: Path, rows: list[str], started: set) -> tuple | str | None:
    """The first job not yet started, in row order: a row's seeds once its grid has run, else its
    grid; later rows' grid runs fill a worker that would wait. 'wait' while only running jobs remain."""
    waiting = False
    for row in rows:
        label, grid, seeds = GRID[row][:3]
        lr = chosen_lr(out, row)
        if grid is None:  # borrows another row's chosen LR
            borrowed = chosen_lr(out, GRID[row][3])
            grid = [borrowed] if borrowed else []
            waiting = waiting or not borrowed
        jobs = [(row, lr, s) for s in seeds[1:]] if lr else [(row, g, 1) for g in grid]
        for job in jobs:
            if job not in started and not running(run_dir(out, *job)):
                started.add(job)
                return job
        waiting = waiting or lr is None or any(not metrics(run_dir(out, *job)) for job in jobs)
    return "wait" if waiting else None


def run(out: Path, rows: list[str], workers: int) -> None:
    started: set = set()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                job = next_job(out, rows, started)
            if job is None:
                return
            if job == "wait":
                time.sleep(10)
                continue
            train(out, *job)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def grid_table(out: Path) -> str:
    lines = ["| method | LR grid: validation accuracy, seed 1 | chosen |", "|---|---|---|"]
    for row, (label, grid, *_) in GRID.items():
        cells = []
        for lr in grid or [chosen_lr(out, row)]:
            if lr is None:
                continue
            m = metrics(run_dir(out, row, lr, 1))
            cells.append(f"{lr:g}: {m['metrics']['val/accuracy']:.4f}" if m else f"{lr:g}: not run")
        lr = chosen_lr(out, row)
        lines.append(f"| {label} | {', '.join(cells)} | {f'{lr:g}' if lr else ''} |")
    return "\n".join(lines)


def table(out: Path) -> str:
    lines = [
        "| method | LR | trainable params | % | test accuracy, median (min-max) | val, median | seeds | fit s | peak RSS MB | checkpoint MB |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row, (label, _, seeds, *_) in GRID.items():
        lr = chosen_lr(out, row)
        runs = [m for s in seeds if lr and (m := metrics(run_dir(out, row, lr, s)))]
        if not runs:
            lines.append(f"| {label} | | | | not run | | 0 | | | |")
            continue
        acc = [r["metrics"]["test/accuracy"] * 100 for r in runs]
        val = [r["metrics"]["val/accuracy"] * 100 for r in runs]
        params, med = runs[0]["parameters"], statistics.median
        lines.append(
            f"| {label} | {lr:g} | {params['trainable']:,} | {params['trainable_percent']:.2f} | {med(acc):.2f} "
            f"({min(acc):.2f}-{max(acc):.2f}) | {med(val):.2f} | {len(runs)} | {med(r['fit_seconds'] for r in runs):.0f} | "
            f"{med(r['peak_memory_mb'] for r in runs):.0f} | {med(r['checkpoint_mb'] for r in runs):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "table"])
    parser.add_argument("--out", type=Path, default=Path("outputs/peft-protocol"))
    parser.add_argument("--rows", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--into", nargs="*", type=Path, default=[], help="write both tables between the files' markers")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "run":
        run(args.out, args.rows, args.workers)
    tables = f"{grid_table(args.out)}\n\n{table(args.out)}"
    print(tables)
    for path in args.into:  # docs/tuning.md, experiments/README.md: the tables as measured, never typed
        text = path.read_text()
        start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
        path.write_text(f"{text[:start]}\n{tables}\n{text[end:]}")


MARKERS = ("<!-- peft-table -->", "<!-- /peft-table -->")


if __name__ == "__main__":
    main()
