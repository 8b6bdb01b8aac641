"""csv/metrics.csv that survives a resume: every logged row once, across kills and restarts.

Lightning's ``CSVLogger`` deletes an existing metrics.csv when its writer starts (2.6.6,
``_ExperimentWriter._check_log_dir_exists``), so a resumed run lost every row before the resume
point. Two small pieces fix it:

    ResumableCSVLogger   keeps the file and its header, and appends (conf/logger/csv.yaml)
    CSVRowsInCheckpoint  records in each checkpoint how many rows the file held when it was saved;
                         a resume cuts the rows the killed run wrote after that point, since the
                         resumed run logs those steps again (conf/callbacks/default.yaml)
"""

from __future__ import annotations

import csv

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # keep an earlier metrics.csv; take its header so later rewrites keep its columns
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(next(csv.reader(file), []))

    def keep_rows(self, count: int) -> None:
        """Cut the file to its first ``count`` data rows (what a checkpoint had seen)."""
        self.metrics = []
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            rows = list(csv.reader(file))
        if len(rows) - 1 <= count:
            return
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            csv.writer(file).writerows(rows[: count + 1])

    def flushed_rows(self) -> int:
        self.save()
        if not self._fs.isfile(self.metrics_file_path):
            return 0
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            return max(sum(1 for _ in csv.reader(file)) - 1, 0)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose metrics.csv is appended to, not replaced, when a run resumes."""

    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class CSVRowsInCheckpoint(L.Callback):
    """Stores the row count of each ``ResumableCSVLogger`` in checkpoints; a resume cuts back to it."""

    def __init__(self):
        self._trainer = None

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer

    def _writers(self) -> list[_AppendingWriter]:
        loggers = self._trainer.loggers if self._trainer is not None else []
        return [lg.experiment for lg in loggers if isinstance(lg, ResumableCSVLogger)]

    def state_dict(self) -> dict:
        if self._trainer is None or not self._trainer.is_global_zero:
            return {"rows": []}
        return {"rows": [writer.flushed_rows() for writer in self._writers()]}

    def load_state_dict(self, state: dict) -> None:
        # only a resumed fit replays steps; testing a checkpoint (fit's last stage) loads this state too
        if self._trainer is None or not self._trainer.is_global_zero or self._trainer.state.fn != "fit":
            return
        for writer, count in zip(self._writers(), state.get("rows", [])):
            writer.keep_rows(int(count))
