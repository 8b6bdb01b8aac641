"""Regression head on a tiny model: the loss falls on sentence pairs; metrics match hand-computed values."""

from __future__ import annotations

import torch

from helpers.tasks import loss_falls
from tunelab.tasks import Regression


def test_regression_on_sentence_pairs_loss_falls(tiny_backbone):
    rows = [
        {"text": "a cat", "text_pair": "a cat", "label": 5.0},
        {"text": "a cat", "text_pair": "the stock market", "label": 0.0},
        {"text": "rain", "text_pair": "it rains", "label": 4.0},
        {"text": "a dog", "text_pair": "tax law", "label": 0.5},
    ]
    task = Regression()
    losses, _, batch = loss_falls(tiny_backbone, task, rows)
    assert (batch["token_type_ids"] == 1).any()  # the pair is encoded as segment B
    assert losses[-1] < 0.3 * losses[0]


def test_regression_metrics_match_hand_computed():
    task = Regression()
    metrics = task.metrics()
    preds = torch.tensor([1.0, 2.0, 3.0, 5.0])
    target = torch.tensor([1.0, 3.0, 2.0, 4.0])
    task.update_metrics(metrics, None, type("Out", (), {"logits": preds[:, None]})(), {"labels": target})
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # mse = (0 + 1 + 1 + 1) / 4; spearman of ranks (1,2,3,4) vs (1,3,2,4) = 1 - 6*2/(4*15) = 0.8
    # pearson: x-mean = (-1.75,-.75,.25,2.25), y-mean = (-1.5,.5,-.5,1.5): sum of products 5.5, so r = 5.5 / sqrt(8.75 * 5)
    assert got["mse"] == 0.75 and got["spearman"] == 0.8
    assert got["pearson"] == round(5.5 / (8.75 * 5) ** 0.5, 4)
