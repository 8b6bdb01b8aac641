"""Regression on one text or a sentence pair (STS-B style similarity scores, ratings, ...)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task
from tunelab.tasks.classification import tokenize_texts


class Regression(Task):
    """One real-valued target per text; MSE loss; Pearson, Spearman and MSE metrics."""

    name = "regression"
    pipeline_task = "text-classification"  # with problem_type=regression the pipeline returns the raw score
    required_columns = ("text", "label")
    optional_columns = ("text_pair",)

    def __init__(self, metric: str = "val/pearson", metric_mode: str = "max"):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForSequenceClassification

        self.auto_class = AutoModelForSequenceClassification

    def model_config(self) -> dict:
        return {"num_labels": 1, "problem_type": "regression", "id2label": {0: "score"}, "label2id": {"score": 0}}

    def preprocess(self, examples, tokenizer, max_length):
        features = tokenize_texts(examples, tokenizer, max_length)
        if "label" in examples:
            targets = []
            for value in examples["label"]:
                try:
                    target = float(value)
                except (TypeError, ValueError):
                    target = math.nan
                if math.isnan(target):
                    raise TunelabError(f"Regression target {value!r} is not a number. Fix or drop that row.")
                targets.append(target)
            features["labels"] = targets
        return features

    def loss(self, outputs, batch):
        return F.mse_loss(outputs.logits.float().squeeze(-1), batch["labels"].float())

    def metrics(self):
        from torchmetrics import (
            MeanSquaredError,
            MetricCollection,
            PearsonCorrCoef,
            SpearmanCorrCoef,
        )

        # float64 states: Pearson merges the processes' running means and co-moments, which in float32 moves
        # the 5th decimal with the number of processes (1.2e-5 on 15 rows)
        return MetricCollection(
            {"pearson": PearsonCorrCoef(), "spearman": SpearmanCorrCoef(), "mse": MeanSquaredError()}
        ).set_dtype(torch.float64)

    def update_metrics(self, metrics, model, outputs, batch):
        metrics.update(outputs.logits.double().squeeze(-1), batch["labels"].double())

    def postprocess(self, model, outputs, batch):
        return [{"score": s} for s in outputs.logits.float().squeeze(-1).tolist()]
