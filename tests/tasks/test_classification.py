"""Classification heads on a tiny random-init model: the loss falls on a fixed batch; metrics match hand-computed values."""

from __future__ import annotations

import pytest
import torch

from helpers.tasks import load_tokenizer_stub, loss_falls
from tunelab.errors import TunelabError
from tunelab.tasks import SequenceClassification

ROWS = [
    {"text": "a great film", "label": "pos"},
    {"text": "dull and slow", "label": "neg"},
    {"text": "loved every minute", "label": "pos"},
    {"text": "a waste of time", "label": "neg"},
]


def test_single_label_loss_falls_and_labels_are_learnt(tiny_backbone):
    task = SequenceClassification()
    losses, module, _ = loss_falls(tiny_backbone, task, ROWS)
    assert losses[-1] < 0.5 * losses[0]
    assert task.labels == ["neg", "pos"]
    assert module.model.config.id2label == {0: "neg", 1: "pos"}


def test_multi_label_loss_falls(tiny_backbone):
    rows = [
        {"text": "funny and sad", "label": "comedy,drama"},
        {"text": "explosions", "label": "action"},
        {"text": "just funny", "label": "comedy"},
        {"text": "sad war", "label": "drama,action"},
    ]
    task = SequenceClassification(multi_label=True)
    losses, module, batch = loss_falls(tiny_backbone, task, rows, steps=40)
    assert task.labels == ["action", "comedy", "drama"]
    assert batch["labels"].tolist()[0] == [0.0, 1.0, 1.0]
    assert losses[-1] < 0.5 * losses[0]
    assert module.model.config.problem_type == "multi_label_classification"


def test_classification_metrics_match_hand_computed():
    task = SequenceClassification(labels=["a", "b", "c"])
    metrics = task.metrics()
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    labels = torch.tensor([0, 1, 2, 2, 1])
    task.update_metrics(metrics, None, type("Out", (), {"logits": logits})(), {"labels": labels})
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # predictions a,b,b,c,a vs truth a,b,c,c,b: accuracy 3/5.
    # F1 per class: a: p=1/2 r=1 -> 2/3; b: p=1/2 r=1/2 -> 1/2; c: p=1 r=1/2 -> 2/3; macro = 0.6111
    assert got == {"accuracy": 0.6, "f1_macro": 0.6111}


def test_positive_label_adds_the_binary_f1_of_that_class():
    task = SequenceClassification(labels=["not_equivalent", "equivalent"], positive_label="equivalent")
    metrics = task.metrics()
    logits = torch.tensor([[0, 1.0], [0, 1.0], [1.0, 0], [1.0, 0], [0, 1.0], [1.0, 0]])
    labels = torch.tensor([1, 0, 0, 1, 1, 1])
    task.update_metrics(metrics, None, type("Out", (), {"logits": logits})(), {"labels": labels})
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # predictions 1,1,0,0,1,0 vs truth 1,0,0,1,1,1: accuracy 3/6.
    # equivalent (id 1): tp 2, fp 1, fn 2 -> F1 = 2*2 / (2*2 + 1 + 2) = 4/7 = 0.5714 (sklearn f1_score, pos_label=1)
    # not_equivalent (id 0): tp 1, fp 2, fn 1 -> 2/5 = 0.4; macro = (0.4 + 4/7) / 2 = 0.4857
    assert got == {"accuracy": 0.5, "f1_macro": 0.4857, "f1": 0.5714}

    # with three classes it is one class against the rest: c of a,b,b,c,a vs a,b,c,c,b has p=1 r=1/2 -> 2/3
    task = SequenceClassification(labels=["a", "b", "c"], positive_label="c")
    metrics = task.metrics()
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    task.update_metrics(metrics, None, type("Out", (), {"logits": logits})(), {"labels": torch.tensor([0, 1, 2, 2, 1])})
    assert round(metrics.compute()["f1"].item(), 4) == 0.6667


def test_positive_label_must_be_a_label_and_single_label():
    with pytest.raises(TunelabError, match=r"task.positive_label='1' is not one of the labels \['neg', 'pos'\]"):
        SequenceClassification(labels=["neg", "pos"], positive_label=1).metrics()
    with pytest.raises(TunelabError, match="single-label"):
        SequenceClassification(multi_label=True, positive_label="pos")


def test_unknown_label_is_named():
    task = SequenceClassification(labels=["neg", "pos"])
    with pytest.raises(TunelabError, match=r"Unknown label 'neutral'.*\['neg', 'pos'\]"):
        task.preprocess({"text": ["meh"], "label": ["neutral"]}, load_tokenizer_stub(), 16)


def test_missing_text_is_named():
    task = SequenceClassification(labels=["neg", "pos"])
    with pytest.raises(TunelabError, match="column 'text' holds None"):
        task.preprocess({"text": [None], "label": ["neg"]}, load_tokenizer_stub(), 16)
