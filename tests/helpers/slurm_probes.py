"""Callbacks tests/sweeps/test_slurm.py injects into SLURM jobs (``+callbacks.NAME._target_=helpers.slurm_probes.X``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L


class RecordRank(L.Callback):
    """One line per process that starts fitting: its rank as Lightning and as SLURM see it, its pid."""

    def __init__(self, path: str):
        self.path = path

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            from hydra.core.hydra_config import HydraConfig

            line = {
                "run": HydraConfig.get().runtime.output_dir,
                "rank": trainer.global_rank,
                "world": trainer.world_size,
                "pid": os.getpid(),
                "slurm_procid": os.environ.get("SLURM_PROCID"),
                "job": os.environ.get("SLURM_JOB_ID"),
                "restarts": os.environ.get("SLURM_RESTART_COUNT", "0"),
            }
            with open(self.path, "a") as f:
                f.write(json.dumps(line) + "\n")


class WaitAtStep(L.Callback):
    """In the job's first run only: after optimizer step ``step``, write ``marker`` and wait (a signal
    comes from the test meanwhile); every step also takes ``seconds``, so the run is still going."""

    def __init__(self, marker: str, step: int, wait: float = 120, seconds: float = 0.0):
        self.marker, self.step, self.wait, self.seconds = Path(marker), step, wait, seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
        if (
            trainer.global_step == self.step
            and os.environ.get("SLURM_RESTART_COUNT", "0") == "0"
            and not self.marker.exists()
        ):
            self.marker.write_text(os.environ["SLURM_JOB_ID"])
            deadline = time.monotonic() + self.wait
            while time.monotonic() < deadline:  # a signal handler sets its flag; the next batch end acts on it
                time.sleep(0.1)
                if any(getattr(c, "signal_received", None) for c in trainer.callbacks):
                    return
