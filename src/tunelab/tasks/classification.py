"""Sequence classification: single-label and multi-label, single sentences or sentence pairs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics.classification import BinaryF1Score

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task


def tokenize_texts(examples: dict[str, list], tokenizer, max_length: int) -> dict[str, list]:
    """Tokenize ``text`` (and ``text_pair`` if present) without padding: batches pad dynamically."""
    texts = examples["text"]
    pairs = examples.get("text_pair")
    for column, values in (("text", texts), ("text_pair", pairs or [])):
        for i, value in enumerate(values):
            if not isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
                raise TunelabError(
                    f"Row {examples['idx'][i] if 'idx' in examples else i}: column '{column}' holds "
                    f"{value!r}, not text. Remove or fill empty rows in the data file, or map "
                    "another column with data.columns."
                )
    features = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    features["length"] = [len(ids) for ids in features["input_ids"]]
    return features


class PositiveClassF1(BinaryF1Score):
    """F1 of one class against all the others (binary F1; scikit-learn's ``f1_score(pos_label=...)``).

    This is the F1 that GLUE and transformers' run_glue report for MRPC and QQP: the F1 of the
    positive class ("equivalent", "duplicate"), not an average over classes. Takes predicted and
    true class ids, like the other single-label metrics, and scores ``id == positive``.
    """

    def __init__(self, positive: int):
        super().__init__()
        self.positive = positive

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update((preds == self.positive).long(), (target == self.positive).long())


class SequenceClassification(Task):
    """One label per text (``multi_label: false``) or a set of labels per text (``true``).

    Labels are strings or ints. Without ``labels`` the label set is read from the training split
    (a ``ClassLabel`` feature's names when the source has one); a label outside the set is an error.
    ``positive_label`` (single-label only) adds ``f1``: the binary F1 of that label against the
    others, as GLUE reports for MRPC and QQP; ``f1_macro`` (the unweighted mean over classes) stays.
    """

    name = "sequence_classification"
    pipeline_task = "text-classification"
    optional_columns = ("text_pair",)
    required_columns = ("text", "label")

    def __init__(
        self,
        labels: list | None = None,
        multi_label: bool = False,
        label_smoothing: float = 0.0,
        label_separator: str = ",",
        threshold: float = 0.5,
        positive_label: str | int | None = None,
        metric: str = "val/accuracy",
        metric_mode: str = "max",
    ):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForSequenceClassification

        self.auto_class = AutoModelForSequenceClassification
        self.labels = [str(label) for label in labels] if labels else None
        self._configured_labels = self.labels
        self._class_label = False
        self.multi_label = multi_label
        if not 0.0 <= label_smoothing < 1.0:
            raise TunelabError(f"task.label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = label_smoothing
        self.label_separator = label_separator
        self.threshold = threshold
        if positive_label is not None and multi_label:
            raise TunelabError(
                "task.positive_label (binary F1 of one label) is for single-label classification; "
                "multi-label runs report f1_macro and f1_micro. Set task.positive_label=null."
            )
        self.positive_label = None if positive_label is None else str(positive_label)

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            "configured_labels": self._configured_labels,
            "multi_label": self.multi_label,
            "label_separator": self.label_separator,
        }

    # ---- labels
    def _as_label_list(self, value) -> list:
        if self.multi_label:
            if isinstance(value, str):
                return [v.strip() for v in value.split(self.label_separator) if v.strip()]
            return list(value or [])
        return [value]

    def labels_from(self, train_split) -> dict:
        if self.labels is not None:
            return self.state_dict()
        feature = train_split.features.get("label")
        names = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
        if names:  # a datasets.ClassLabel: ints whose names the source declares
            return {**self.state_dict(), "labels": list(names), "class_label": True}
        seen = {v for value in train_split["label"] for v in self._as_label_list(value)}
        if None in seen:
            raise TunelabError("The training split has rows without a label. Drop them or fill the label column.")
        # ints sort as numbers (so -1 < 1 < 10), anything else as text
        numeric = all(isinstance(v, int) for v in seen)
        labels = [str(v) for v in sorted(seen, key=None if numeric else str)]
        if len(labels) < 2 and not self.multi_label:
            raise TunelabError(f"The training split has a single label {labels}: nothing to classify.")
        return {**self.state_dict(), "labels": labels}

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def state_dict(self) -> dict:
        # class_label: the source's labels are ClassLabel ints (names in id order), not the names themselves
        return {"labels": self.labels, "multi_label": self.multi_label, "class_label": self._class_label}

    def load_state_dict(self, state: dict) -> None:
        self.labels = state["labels"]
        self.multi_label = state["multi_label"]
        self._class_label = bool(state.get("class_label", False))

    def model_config(self) -> dict:
        return {
            "num_labels": len(self.labels),
            "id2label": dict(enumerate(self.labels)),
            "label2id": self.label2id,
            "problem_type": "multi_label_classification" if self.multi_label else "single_label_classification",
        }

    # ---- features
    def _label_id(self, value, label2id) -> int:
        if self._class_label and isinstance(value, int):
            if not 0 <= value < len(self.labels):
                raise TunelabError(
                    f"Label id {value} is out of range: the labels are 0..{len(self.labels) - 1} {self.labels}."
                )
            return value
        key = str(value)
        if key not in label2id:
            raise TunelabError(
                f"Unknown label {value!r}: the model's labels (from the training split or task.labels) are "
                f"{self.labels}. Fix the data, or list every label in task.labels."
            )
        return label2id[key]

    def preprocess(self, examples, tokenizer, max_length):
        features = tokenize_texts(examples, tokenizer, max_length)
        if "label" in examples:
            label2id = self.label2id
            if self.multi_label:
                hot = []
                for value in examples["label"]:
                    row = [0.0] * len(self.labels)
                    for v in self._as_label_list(value):
                        row[self._label_id(v, label2id)] = 1.0
                    hot.append(row)
                features["labels"] = hot
            else:
                features["labels"] = [self._label_id(v, label2id) for v in examples["label"]]
        return features

    # ---- objective and metrics
    def loss(self, outputs, batch):
        logits = outputs.logits.float()
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, batch["labels"].float())
        return F.cross_entropy(logits, batch["labels"], label_smoothing=self.label_smoothing)

    def metrics(self):
        from torchmetrics import MetricCollection
        from torchmetrics.classification import (
            MulticlassAccuracy,
            MulticlassF1Score,
            MultilabelExactMatch,
            MultilabelF1Score,
        )

        n = len(self.labels)
        if self.multi_label:
            return MetricCollection(
                {
                    "accuracy": MultilabelExactMatch(num_labels=n, threshold=self.threshold),
                    "f1_macro": MultilabelF1Score(num_labels=n, average="macro", threshold=self.threshold),
                    "f1_micro": MultilabelF1Score(num_labels=n, average="micro", threshold=self.threshold),
                }
            )
        metrics = {
            "accuracy": MulticlassAccuracy(num_classes=n, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes=n, average="macro"),
        }
        if self.positive_label is not None:
            if self.positive_label not in self.labels:
                raise TunelabError(
                    f"task.positive_label={self.positive_label!r} is not one of the labels {self.labels} "
                    "(from the training split or task.labels). Name one of them, e.g. "
                    f"task.positive_label={self.labels[-1]}."
                )
            metrics["f1"] = PositiveClassF1(self.labels.index(self.positive_label))
        return MetricCollection(metrics)

    def update_metrics(self, metrics, model, outputs, batch):
        logits = outputs.logits.float()
        if self.multi_label:
            metrics.update(torch.sigmoid(logits), batch["labels"].long())
        else:
            metrics.update(logits.argmax(-1), batch["labels"])

    def postprocess(self, model, outputs, batch):
        logits = outputs.logits.float()
        if self.multi_label:
            probs = torch.sigmoid(logits).tolist()
            return [
                {
                    "labels": [self.labels[j] for j, p in enumerate(row) if p >= self.threshold],
                    "scores": {self.labels[j]: round(p, 6) for j, p in enumerate(row)},
                }
                for row in probs
            ]
        probs = torch.softmax(logits, -1)
        score, best = probs.max(-1)
        return [{"label": self.labels[b], "score": s} for b, s in zip(best.tolist(), score.tolist())]
