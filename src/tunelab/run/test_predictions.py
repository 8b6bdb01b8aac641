"""``<run>/test_predictions.jsonl``: every test row's prediction, gold answer and score, for per-example tests.

With few seeds, the strongest evidence that one configuration beats another is per example: both
models answered the same test rows, so ``tunelab compare`` pairs them row by row (a paired
bootstrap, and McNemar where a row is plainly right or wrong: tunelab/sweeps/stats.py). One JSON
object per line::

    {"id": 17, "prediction": "pos", "gold": "neg", "measure": "accuracy", "score": 0.0, "correct": false}

``id`` is the row's position in the test split (the split is carved with ``data.split_seed``, not
the run's seed, so it is the same row in every run of a sweep); ``score`` is higher-is-better, what
``measure`` says (per head: tunelab/run/example_scores.py). Written after ``trainer.test`` by one more
pass over the test split through ``Trainer.predict`` (the module's own ``predict_step``, with the best
checkpoint, on the run's devices); the windows of one long input are merged as ``tunelab predict``
merges them. Gold answers come from the batch's labels (label heads) or from the raw test split.
Under DDP each process predicts its share and rank 0 gathers all rows
(``torch.distributed.all_gather_object``) and writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tunelab.run import example_scores

FILE = "test_predictions.jsonl"


def covers(task) -> bool:
    """Whether a run of this task writes the file (every built-in head; not a user's own)."""
    return example_scores.head(task) is not None


def _writer_class():
    import lightning as L  # here, not at the top: compare reads these files without loading Lightning

    class TestPredictionWriter(L.Callback):
        """Collects ``predict_step``'s (idx, row) pairs (with the batch's gold labels, or the row's loss);
        rank 0 merges windows, scores every row and writes the file."""

        def __init__(self, path: Path, task, raw_test=None):
            self.path, self.task, self.raw_test = Path(path), task, raw_test
            self.head = example_scores.head(task, raw_test.features if raw_test is not None else None)
            self.items: list[tuple] = []  # (idx, row, gold or None, (loss, tokens) or None)

        def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            head = self.head
            golds = [head.gold_of_label(label) for label in batch["labels"]] if head.gold_of_label else None
            losses = example_scores.row_losses(pl_module.model, batch) if head.row_loss else None
            for i, (idx, row) in enumerate(outputs):
                self.items.append((int(idx), row, golds[i] if golds else None, losses[i] if losses else None))

        def on_predict_epoch_end(self, trainer, pl_module):
            import torch.distributed as dist

            items = self.items
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                gathered = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, items)
                items = [item for part in gathered for item in part]
            if trainer.is_global_zero:
                self.path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows(items)))

        def rows(self, items: list[tuple]) -> list[dict]:
            merged: dict[int, tuple] = {}
            for idx, row, gold, loss in items:  # the windows of one long input (QA), as tunelab predict merges them
                if idx in merged:
                    row = self.task.merge_prediction(merged[idx][0], row)
                merged[idx] = (row, gold, loss)
            out = []
            for idx in sorted(merged):
                row, gold, loss = merged[idx]
                prediction = self.head.prediction(row)
                if self.head.gold_of_raw is not None:
                    gold = self.head.gold_of_raw(self.raw_test[idx])
                item = {"id": idx, "prediction": prediction, "gold": gold, "measure": self.head.measure}
                if loss is not None:
                    item.update(score=-loss[0], loss=loss[0], tokens=loss[1])
                else:
                    score, correct = self.head.score(prediction, gold)
                    item["score"] = score
                    if correct is not None:
                        item["correct"] = correct
                out.append(item)
            return out

    TestPredictionWriter.__qualname__ = "TestPredictionWriter"  # picklable by name (ddp_spawn ships callbacks)
    return TestPredictionWriter


def __getattr__(name: str):
    if name == "TestPredictionWriter":  # built on first use; unpickling in a spawned process finds it here too
        return globals().setdefault(name, _writer_class())
    raise AttributeError(name)


def _raw_test_split(datamodule):
    """The test split as the data source gives it (columns renamed, split carved, row i = id i)."""
    # the datamodule keeps only the tokenized splits; the raw one is read again (the source is cached)
    return datamodule._raw_splits()["test"]


def write(trainer, module, datamodule, ckpt_path: str | None, run_dir: Path) -> Path | None:
    """One more pass over the test split with the checkpoint the test used; returns the file (None: not written)."""
    task = module.task
    if not covers(task):
        print(f"{FILE}: not written for the {task.name} task (a head of your own: no per-example score)")
        return None
    raw_test = None if example_scores.head(task).gold_of_label else _raw_test_split(datamodule)
    writer = sys.modules[__name__].TestPredictionWriter(Path(run_dir) / FILE, task, raw_test)
    trainer.callbacks.append(writer)
    try:
        trainer.predict(
            module, dataloaders=datamodule.test_dataloader(), ckpt_path=ckpt_path or None, return_predictions=False
        )
    finally:
        trainer.callbacks.remove(writer)
    return writer.path


def read(run_dir: Path) -> dict | None:
    """``{row id: (score, correct or None)}`` of a run's file, higher score better; None when the run has none.
    Files written before rows had a score: accuracy per row, or minus the squared error."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        correct = bool(row["correct"]) if "correct" in row else None
        if "score" in row:
            rows[row["id"]] = (float(row["score"]), correct)
        elif correct is not None:
            rows[row["id"]] = (float(correct), correct)
        else:
            rows[row["id"]] = (-((float(row["prediction"]) - float(row["gold"])) ** 2), None)
    return rows


def measure(run_dir: Path) -> str:
    """What a run's per-row score is (the file's first row says; older files: accuracy or squared error)."""
    with open(Path(run_dir) / FILE, encoding="utf-8") as f:
        row = json.loads(f.readline() or "{}")
    return row.get("measure") or ("accuracy" if "correct" in row else "minus squared error")


def evidence(best_runs: list, runner_runs: list, over: tuple[str, ...]) -> str:
    """Paired bootstrap (and McNemar) between two configurations' runs, in one sentence (tunelab compare)."""
    from tunelab.sweeps import stats

    def loaded(runs):
        found = [
            (", ".join(f"{k}={r.overrides.get(k, '')}" for k in over), r, read(r.path))
            for r in runs
            if r.status == "completed"
        ]
        found = [(key, run, rows) for key, run, rows in found if rows]
        unique = len({key for key, _, _ in found}) == len(found)  # else runs share a seed: no pairs
        return {key if unique else f"run {run.label}": (run, rows) for key, run, rows in found}

    a, b = loaded(best_runs), loaded(runner_runs)
    measures = {measure(run.path) for run, _ in [*a.values(), *b.values()]}
    test = stats.per_example({k: rows for k, (_, rows) in a.items()}, {k: rows for k, (_, rows) in b.items()})
    return stats.describe_examples(test, " / ".join(sorted(measures)))
