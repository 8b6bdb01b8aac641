"""The one place a run's parts are wired together from the composed config: task, data, model.

``train`` (and the commands that rebuild a finished run) call ``build``; everything a part needs from
another part is handed over here, explicitly, in order. No part writes into another.

How a batch flows
-----------------
A training row goes through these files, in this order:

1. file -> rows: ``data/sources.py`` (the ``data.loader``: a built-in corpus, local files, the Hub) returns
   the source's splits; ``data/raw_splits.py`` maps its columns onto the task's canonical ones
   (``text``, ``label``, ...), carves the missing splits and numbers the rows (``idx``).
2. rows -> labels: ``data/datamodule.py`` ``learn_labels()`` asks the task what it learns from the
   training split (``tasks/<head>.py`` ``labels_from``) and returns it; ``build`` below hands it to the
   task with ``task.setup(tokenizer, labels)``.
3. rows -> features: ``data/datamodule.py`` maps ``task.preprocess`` (``tasks/<head>.py``) over every split
   and caches the result (``data/tokenized_cache.py``).
4. features -> batch: the data module's loaders sample rows (``data/samplers.py``, resumable
   for training) and pad them with ``task.collate`` (``tasks/padding.py`` for most heads).
5. batch -> loss: ``model/module.py`` ``TuneModule.training_step`` calls ``task.forward(model, batch)`` and
   ``task.loss(outputs, batch)`` (``tasks/<head>.py``); evaluation adds ``task.update_metrics(metrics,
   model, outputs, batch)``, predict ``task.postprocess(model, outputs, batch)``: the model is an
   argument, for the heads that generate. ``model/optim.py`` builds the optimizer and schedule.
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
    """Task -> data module -> labels -> task set up -> tokenized splits -> TuneModule (backbone + head,
    optimizer, schedule)."""
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    task.setup(datamodule.tokenizer, datamodule.learn_labels())
    check_metric(task)  # needs the labels (metrics() sizes itself by them)
    datamodule.setup("fit")  # tokenize (or read the cache) now: train records the data's fingerprint
    optimizer = instantiate(cfg.optimizer, "optimizer")
    scheduler = instantiate(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    module = instantiate(cfg.model, "model", task=task, optimizer=optimizer, scheduler=scheduler)
    return RunParts(task=task, datamodule=datamodule, module=module)
