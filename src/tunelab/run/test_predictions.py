"""``<run>/test_predictions.jsonl``: every test row's prediction and gold answer, for per-example tests.

With few seeds, the strongest evidence that one configuration beats another is per example: both
models answered the same test rows, so ``tunelab compare`` pairs them row by row (a paired
bootstrap, and McNemar for classification: tunelab/sweeps/stats.py). One JSON object per line::

    {"id": 17, "prediction": "pos", "gold": "neg", "correct": false}

``id`` is the row's position in the test split (the split is carved with ``data.split_seed``, not
the run's seed, so it is the same row in every run of a sweep). Written after ``trainer.test`` by
one more pass over the test split through ``Trainer.predict`` (the module's own ``predict_step``
and ``task.postprocess``, with the best checkpoint, on the run's devices). Under DDP each process
predicts its share and rank 0 gathers all rows (``torch.distributed.all_gather_object``) and writes.

Tasks covered: sequence classification (single- and multi-label), multiple choice (``correct`` per
row) and regression (no ``correct``; compare scores rows by squared error). Generation, tagging and
extractive QA are not written (their per-row scores need the task's own metric code): the run says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FILE = "test_predictions.jsonl"


def _codec(task):
    """(prediction of a postprocess row, gold of a batch label) for the tasks this file covers, else None."""
    from tunelab.tasks.classification import SequenceClassification
    from tunelab.tasks.multiple_choice import MultipleChoice
    from tunelab.tasks.regression import Regression

    if isinstance(task, SequenceClassification):
        if task.multi_label:
            return (
                lambda row: sorted(row["labels"]),
                lambda label: sorted(task.labels[j] for j, v in enumerate(label.tolist()) if v >= 0.5),
            )
        return lambda row: row["label"], lambda label: task.labels[int(label)]
    if isinstance(task, MultipleChoice):
        return lambda row: row["choice"], lambda label: int(label)
    if isinstance(task, Regression):
        return lambda row: row["score"], lambda label: float(label)
    return None


def _writer_class():
    import lightning as L  # here, not at the top: compare reads these files without loading Lightning

    class TestPredictionWriter(L.Callback):
        """Collects ``predict_step``'s (idx, row) pairs with the batch's gold labels; rank 0 writes the file."""

        def __init__(self, path: Path, task, regression: bool):
            self.path, self.regression = Path(path), regression
            self.prediction, self.gold = _codec(task)
            self.rows: list[dict] = []

        def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            for (idx, row), label in zip(outputs, batch["labels"]):
                prediction, gold = self.prediction(row), self.gold(label)
                item = {"id": int(idx), "prediction": prediction, "gold": gold}
                if not self.regression:
                    item["correct"] = prediction == gold
                self.rows.append(item)

        def on_predict_epoch_end(self, trainer, pl_module):
            import torch.distributed as dist

            rows = self.rows
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                gathered = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, rows)
                rows = [row for part in gathered for row in part]
            if trainer.is_global_zero:
                unique = {row["id"]: row for row in rows}  # a padded distributed sampler repeats rows
                self.path.write_text(
                    "".join(json.dumps(unique[i], ensure_ascii=False) + "\n" for i in sorted(unique)), encoding="utf-8"
                )

    TestPredictionWriter.__qualname__ = "TestPredictionWriter"  # picklable by name (ddp_spawn ships callbacks)
    return TestPredictionWriter


def __getattr__(name: str):
    if name == "TestPredictionWriter":  # built on first use; unpickling in a spawned process finds it here too
        return globals().setdefault(name, _writer_class())
    raise AttributeError(name)


def write(trainer, module, datamodule, ckpt_path: str | None, run_dir: Path) -> Path | None:
    """One more pass over the test split with the checkpoint the test used; returns the file (None: not written)."""
    from tunelab.tasks.regression import Regression

    task = module.task
    if _codec(task) is None:
        print(
            f"{FILE}: not written for the {task.name} task (per-example tests cover classification, "
            "multiple choice and regression)"
        )
        return None
    writer = sys.modules[__name__].TestPredictionWriter(Path(run_dir) / FILE, task, isinstance(task, Regression))
    trainer.callbacks.append(writer)
    try:
        trainer.predict(
            module, dataloaders=datamodule.test_dataloader(), ckpt_path=ckpt_path or None, return_predictions=False
        )
    finally:
        trainer.callbacks.remove(writer)
    return writer.path


def read(run_dir: Path) -> dict | None:
    """``{row id: (score, correct or None)}`` of a run's file; higher score is better (accuracy per row,
    or minus the squared error); None when the run has no file."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "correct" in row:
            rows[row["id"]] = (float(row["correct"]), bool(row["correct"]))
        else:
            rows[row["id"]] = (-((float(row["prediction"]) - float(row["gold"])) ** 2), None)
    return rows


def evidence(best_runs: list, runner_runs: list, over: tuple[str, ...]) -> str:
    """Paired bootstrap (and McNemar) between two configurations' runs, in one sentence (tunelab compare)."""
    from tunelab.sweeps import stats

    def loaded(runs):
        found = [
            (", ".join(f"{k}={r.overrides.get(k, '')}" for k in over), f"run {r.label}", read(r.path))
            for r in runs
            if r.status == "completed"
        ]
        found = [(key, label, rows) for key, label, rows in found if rows]
        unique = len({key for key, _, _ in found}) == len(found)  # else runs share a seed: no pairs
        return {key if unique else label: rows for key, label, rows in found}

    a, b = loaded(best_runs), loaded(runner_runs)
    regression = any(row[1] is None for rows in [*a.values(), *b.values()] for row in rows.values())
    return stats.describe_examples(stats.per_example(a, b), "minus squared error" if regression else "accuracy")
