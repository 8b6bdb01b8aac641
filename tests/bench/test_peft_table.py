"""bench/peft_table.py chooses each method's learning rate on validation, never on test, then runs its seeds."""

from __future__ import annotations

import json
import sys

from helpers.runs import ROOT

sys.path.insert(0, str(ROOT / "bench"))  # bench/ is scripts, not a package: as `python bench/peft_table.py` sees it

import peft_table  # noqa: E402


def finish(out, row, lr, seed, val, test):
    where = peft_table.run_dir(out, row, lr, seed)
    where.mkdir(parents=True)
    metrics = {"val/accuracy": val, "test/accuracy": test}
    params = {"trainable": 10, "trainable_percent": 1.0}
    record = {"metrics": metrics, "parameters": params, "fit_seconds": 1, "peak_memory_mb": 1, "checkpoint_mb": 1}
    (where / "metrics.json").write_text(json.dumps(record))


def test_the_lr_is_chosen_on_validation_even_when_another_tests_better(tmp_path):
    row = "mr_peft_lora"
    low, mid, high = peft_table.GRID[row][1]
    assert peft_table.chosen_lr(tmp_path, row) is None  # nothing run: nothing chosen
    finish(tmp_path, row, low, 1, val=0.80, test=0.90)  # the best test accuracy: must not matter
    finish(tmp_path, row, mid, 1, val=0.84, test=0.70)
    assert peft_table.chosen_lr(tmp_path, row) is None  # the grid is not complete yet
    finish(tmp_path, row, high, 1, val=0.84, test=0.60)
    assert peft_table.chosen_lr(tmp_path, row) == mid  # best validation; a tie goes to the smaller LR


def test_seeds_run_at_the_chosen_lr_and_a_probe_borrows_it(tmp_path):
    rows = ["mr_peft_lora", "mr_peft_lora_pooler"]
    started: set = set()
    grid = peft_table.GRID["mr_peft_lora"][1]
    first = [peft_table.next_job(tmp_path, rows, started) for _ in grid]
    assert first == [("mr_peft_lora", lr, 1) for lr in grid]
    assert peft_table.next_job(tmp_path, rows, started) == "wait"  # the probe waits for LoRA's choice
    for lr, val in zip(grid, (0.81, 0.83, 0.82)):
        finish(tmp_path, "mr_peft_lora", lr, 1, val=val, test=0.5)
    jobs = [peft_table.next_job(tmp_path, rows, started) for _ in range(5)]
    assert jobs == [("mr_peft_lora", grid[1], s) for s in (2, 3, 4, 5)] + [("mr_peft_lora_pooler", grid[1], 1)]
    for seed in (1, 2, 3, 4, 5):
        if seed > 1:
            finish(tmp_path, "mr_peft_lora", grid[1], seed, val=0.8, test=0.7 + seed / 100)
    table = peft_table.table(tmp_path)
    assert (
        "| LoRA r=8 (query, value) | 0.001 | 10 | 1.00 | 73.00 (50.00-75.00) |" in table
    )  # seed 1: 50, seeds 2-5: 72-75
