"""The task interface: everything that differs between classification, tagging, QA, seq2seq, ...

A ``Task`` owns
  - the model: which ``AutoModelFor*`` class, and the config keys it needs (labels, problem type);
  - the features: how raw canonical columns (``text``, ``text_pair``, ``label``, ...) become
    tokenized features (``preprocess``) and how features become a padded batch (``collate``);
  - the objective: ``loss`` from the model outputs and the batch;
  - the metrics: a ``MetricCollection`` per split, updated from outputs and batch;
  - the answers: ``postprocess`` turns outputs into JSON-able predictions for ``tunelab predict``;
  - ``pipeline_task``: the ``transformers.pipeline`` task an exported folder loads with.

What a task learns from data (its label set, whether rows have prompts) comes in through one call,
``setup(tokenizer, labels)``: ``labels`` is what ``labels_from(train_split)`` returned (the data module
calls it) or a checkpoint's ``task_state``. Nothing else writes into a task. Heads that generate get the
model as an argument (``update_metrics``, ``postprocess``), never through the outputs object.

``TuneModule`` owns optimization, logging and checkpoint hooks; ``TuneDataModule`` owns loading,
splitting, caching and batching; ``tunelab.commands.parts.build`` wires them. A new task is one file
with one ``Task`` subclass plus one config in ``conf/task/``.
"""

from __future__ import annotations

from typing import Any

import torch

from tunelab.errors import TunelabError


class Task:
    name: str = "task"
    #: the ``AutoModelFor*`` class the backbone is loaded with
    auto_class: Any = None
    #: ``transformers.pipeline`` task of an exported folder, or None
    pipeline_task: str | None = None
    #: canonical columns preprocess() needs; the data config maps source columns onto these
    required_columns: tuple[str, ...] = ("text",)
    optional_columns: tuple[str, ...] = ()
    #: batch keys the model must not receive (targets, bookkeeping, texts kept for postprocess)
    non_model_keys: tuple[str, ...] = ("labels", "idx", "length")

    def __init__(self, metric: str, metric_mode: str = "max"):
        if metric_mode not in ("min", "max"):
            raise TunelabError(f"task.metric_mode must be 'min' or 'max', got '{metric_mode}'.")
        self.metric = metric  # the validation metric checkpoints and early stopping follow
        self.metric_mode = metric_mode
        self.tokenizer = None  # given by setup(): heads that decode (generation) need it

    # ---- labels: learnt from the training split, carried in checkpoints and exported configs
    def labels_from(self, train_split) -> dict:
        """What this task learns from the raw training split (the label set, ...), in ``state_dict``'s
        form; changes nothing. Default: nothing to learn, the task's own state."""
        return self.state_dict()

    def setup(self, tokenizer, labels: dict | None) -> None:
        """The one way in for what the task did not get from its config: the tokenizer, and ``labels``
        (``labels_from``'s result, or a checkpoint's ``task_state``). Called before preprocess/build_model."""
        self.tokenizer = tokenizer
        if labels:
            self.load_state_dict(labels)

    @property
    def is_set_up(self) -> bool:
        return self.tokenizer is not None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def model_config(self) -> dict:
        """Keys passed to ``AutoConfig.from_pretrained`` (e.g. num_labels, id2label)."""
        return {}

    def fingerprint(self) -> dict:
        """The task's settings that change the tokenized features (part of the tokenization cache
        key). Settings only, never state learnt from data: a task restored from a checkpoint must
        find the same cache entry as the run that trained it."""
        return {"task": type(self).__qualname__}

    # ---- the model
    def build_model(self, backbone: str, **load_kwargs):
        """The backbone with this task's head. Override to attach a head of your own: return any
        ``nn.Module`` whose output has ``.logits`` (see tests/helpers/own_head.py for an example)."""
        from tunelab.model.backbone import load_model

        return load_model(self.auto_class, backbone, config_overrides=self.model_config(), **load_kwargs)

    # ---- features
    def preprocess(self, examples: dict[str, list], tokenizer, max_length: int) -> dict[str, list]:
        raise NotImplementedError

    def collate(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    # ---- objective and metrics
    def model_inputs(self, batch: dict) -> dict:
        return {k: v for k, v in batch.items() if k not in self.non_model_keys}

    def forward(self, model, batch: dict):
        return model(**self.model_inputs(batch))

    def loss(self, outputs, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, batch: dict) -> int:
        """What ``loss`` averages over in this batch: its rows. A token-mean loss returns its scored tokens,
        so evaluation's epoch loss weighs batches by them (the split's token mean, on any number of processes)."""
        return len(batch["input_ids"])

    def metrics(self):
        """A fresh ``torchmetrics.MetricCollection`` (one per split)."""
        raise NotImplementedError

    def update_metrics(self, metrics, model, outputs, batch: dict) -> None:
        """``model``: the model ``outputs`` came from (generating heads generate with it)."""
        raise NotImplementedError

    def postprocess(self, model, outputs, batch: dict) -> list[dict]:
        raise NotImplementedError

    def merge_prediction(self, earlier: dict, later: dict) -> dict:
        """Two predictions for one input (a long input cut into windows): combine them. Default: the later."""
        return later

    def on_eval_epoch_end(self, module, split: str) -> None:
        """Called after each validation/test epoch (e.g. to log generated samples). Default: nothing."""
