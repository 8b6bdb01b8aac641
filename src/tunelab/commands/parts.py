"""The one place a run's parts are wired together from the composed config: task, data, model.

``train`` (and the commands that rebuild a finished run) call ``build``; everything a part needs from
another part is handed over here, explicitly, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.config import check_metric, instantiate


@dataclass
class RunParts:
    task: Any
    datamodule: Any
    module: Any


def build(cfg) -> RunParts:
    """Task -> data module (tokenize, learn labels) -> TuneModule (backbone + head, optimizer, schedule)."""
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    datamodule.prepare_data()
    datamodule.setup("fit")
    check_metric(task)  # needs the labels the data module just learnt
    optimizer = instantiate(cfg.optimizer, "optimizer")
    scheduler = instantiate(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    module = instantiate(cfg.model, "model", task=task, optimizer=optimizer, scheduler=scheduler)
    return RunParts(task=task, datamodule=datamodule, module=module)
