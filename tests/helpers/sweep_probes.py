"""Callbacks tests inject into real `tunelab train` runs and sweeps (via +callbacks.NAME)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import lightning as L


class RecordStart(L.Callback):
    """Appends one line per process that starts fitting: which job directory, which rank, which pid."""

    def __init__(self, path: str):
        self.path = path

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        from hydra.core.hydra_config import HydraConfig

        line = {"job": HydraConfig.get().runtime.output_dir, "rank": trainer.global_rank, "pid": os.getpid()}
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


class SlowSteps(L.Callback):
    """Makes each training step take a while, so a test can kill a sweep in the middle of a job."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, *args) -> None:
        time.sleep(self.seconds)


class SeenValue(L.Callback):
    """Writes the sha256 of the value it was given: proves the job itself got the real secret, not ***."""

    def __init__(self, value: str, path: str):
        Path(path).write_text(hashlib.sha256(str(value).encode()).hexdigest())


class RecordTrainOrder(L.Callback):
    """Appends one line per training batch: its epoch and the ``idx`` of its rows, in the order trained."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        line = {"epoch": trainer.current_epoch, "idx": batch["idx"].tolist()}
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


def read_train_order(path) -> list[list[int]]:
    """The batches RecordTrainOrder wrote, each a list of row positions in the training split."""
    return [json.loads(line)["idx"] for line in Path(path).read_text().splitlines()]
