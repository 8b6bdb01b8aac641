"""Heads on a tiny random-init model: the loss falls on a fixed batch; metrics match hand-computed values."""

from __future__ import annotations

import datasets
import pytest
import torch

from tunelab.model.backbone import load_tokenizer
from tunelab.errors import TunelabError
from tunelab.model.module import TuneModule
from tunelab.tasks import Regression, SequenceClassification


def _batch(task, tokenizer, rows):
    features = task.preprocess({k: [r[k] for r in rows] for k in rows[0]}, tokenizer, 32)
    items = [{k: features[k][i] for k in features} for i in range(len(rows))]
    return task.collate(tokenizer)(items)


def _loss_falls(backbone, task, rows, steps=60):
    torch.manual_seed(0)  # head init and dropout: independent of what earlier tests left in the global RNG
    tokenizer = load_tokenizer(backbone)
    if hasattr(task, "fit_labels"):
        task.fit_labels(datasets.Dataset.from_list(rows))
    batch = _batch(task, tokenizer, rows)
    module = TuneModule(backbone, task)
    opt = torch.optim.AdamW(module.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = task.loss(task.forward(module.model, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, module, batch


ROWS = [{"text": "a great film", "label": "pos"}, {"text": "dull and slow", "label": "neg"},
        {"text": "loved every minute", "label": "pos"}, {"text": "a waste of time", "label": "neg"}]


def test_single_label_loss_falls_and_labels_are_learnt(tiny_backbone):
    task = SequenceClassification()
    losses, module, _ = _loss_falls(tiny_backbone, task, ROWS)
    assert losses[-1] < 0.5 * losses[0]
    assert task.labels == ["neg", "pos"]
    assert module.model.config.id2label == {0: "neg", 1: "pos"}


def test_multi_label_loss_falls(tiny_backbone):
    rows = [{"text": "funny and sad", "label": "comedy,drama"}, {"text": "explosions", "label": "action"},
            {"text": "just funny", "label": "comedy"}, {"text": "sad war", "label": "drama,action"}]
    task = SequenceClassification(multi_label=True)
    losses, module, batch = _loss_falls(tiny_backbone, task, rows, steps=40)
    assert task.labels == ["action", "comedy", "drama"]
    assert batch["labels"].tolist()[0] == [0.0, 1.0, 1.0]
    assert losses[-1] < 0.5 * losses[0]
    assert module.model.config.problem_type == "multi_label_classification"


def test_regression_on_sentence_pairs_loss_falls(tiny_backbone):
    rows = [{"text": "a cat", "text_pair": "a cat", "label": 5.0}, {"text": "a cat", "text_pair": "the stock market", "label": 0.0},
            {"text": "rain", "text_pair": "it rains", "label": 4.0}, {"text": "a dog", "text_pair": "tax law", "label": 0.5}]
    task = Regression()
    losses, _, batch = _loss_falls(tiny_backbone, task, rows)
    assert (batch["token_type_ids"] == 1).any()  # the pair is encoded as segment B
    assert losses[-1] < 0.3 * losses[0]


def test_classification_metrics_match_hand_computed():
    task = SequenceClassification(labels=["a", "b", "c"])
    metrics = task.metrics()
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    labels = torch.tensor([0, 1, 2, 2, 1])
    task.update_metrics(metrics, type("Out", (), {"logits": logits})(), {"labels": labels})
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # predictions a,b,b,c,a vs truth a,b,c,c,b: accuracy 3/5.
    # F1 per class: a: p=1/2 r=1 -> 2/3; b: p=1/2 r=1/2 -> 1/2; c: p=1 r=1/2 -> 2/3; macro = 0.6111
    assert got == {"accuracy": 0.6, "f1_macro": 0.6111}


def test_positive_label_adds_the_binary_f1_of_that_class():
    task = SequenceClassification(labels=["not_equivalent", "equivalent"], positive_label="equivalent")
    metrics = task.metrics()
    logits = torch.tensor([[0, 1.0], [0, 1.0], [1.0, 0], [1.0, 0], [0, 1.0], [1.0, 0]])
    labels = torch.tensor([1, 0, 0, 1, 1, 1])
    task.update_metrics(metrics, type("Out", (), {"logits": logits})(), {"labels": labels})
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # predictions 1,1,0,0,1,0 vs truth 1,0,0,1,1,1: accuracy 3/6.
    # equivalent (id 1): tp 2, fp 1, fn 2 -> F1 = 2*2 / (2*2 + 1 + 2) = 4/7 = 0.5714 (sklearn f1_score, pos_label=1)
    # not_equivalent (id 0): tp 1, fp 2, fn 1 -> 2/5 = 0.4; macro = (0.4 + 4/7) / 2 = 0.4857
    assert got == {"accuracy": 0.5, "f1_macro": 0.4857, "f1": 0.5714}

    # with three classes it is one class against the rest: c of a,b,b,c,a vs a,b,c,c,b has p=1 r=1/2 -> 2/3
    task = SequenceClassification(labels=["a", "b", "c"], positive_label="c")
    metrics = task.metrics()
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    task.update_metrics(metrics, type("Out", (), {"logits": logits})(), {"labels": torch.tensor([0, 1, 2, 2, 1])})
    assert round(metrics.compute()["f1"].item(), 4) == 0.6667


def test_positive_label_must_be_a_label_and_single_label():
    with pytest.raises(TunelabError, match=r"task.positive_label='1' is not one of the labels \['neg', 'pos'\]"):
        SequenceClassification(labels=["neg", "pos"], positive_label=1).metrics()
    with pytest.raises(TunelabError, match="single-label"):
        SequenceClassification(multi_label=True, positive_label="pos")


def test_regression_metrics_match_hand_computed():
    task = Regression()
    metrics = task.metrics()
    preds = torch.tensor([1.0, 2.0, 3.0, 5.0])
    target = torch.tensor([1.0, 3.0, 2.0, 4.0])
    task.update_metrics(metrics, type("Out", (), {"logits": preds[:, None]})(), {"labels": target})
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # mse = (0 + 1 + 1 + 1) / 4; spearman of ranks (1,2,3,4) vs (1,3,2,4) = 1 - 6*2/(4*15) = 0.8
    # pearson: x-mean = (-1.75,-.75,.25,2.25), y-mean = (-1.5,.5,-.5,1.5): sum of products 5.5, so r = 5.5 / sqrt(8.75 * 5)
    assert got["mse"] == 0.75 and got["spearman"] == 0.8
    assert got["pearson"] == round(5.5 / (8.75 * 5) ** 0.5, 4)


def test_unknown_label_is_named():
    task = SequenceClassification(labels=["neg", "pos"])
    with pytest.raises(TunelabError, match=r"Unknown label 'neutral'.*\['neg', 'pos'\]"):
        task.preprocess({"text": ["meh"], "label": ["neutral"]}, load_tokenizer_stub(), 16)


def test_missing_text_is_named():
    task = SequenceClassification(labels=["neg", "pos"])
    with pytest.raises(TunelabError, match="column 'text' holds None"):
        task.preprocess({"text": [None], "label": ["neg"]}, load_tokenizer_stub(), 16)


def load_tokenizer_stub():
    from tunelab.assets import asset_path

    return load_tokenizer(str(asset_path("minilm")))


# ---- the tokenization cache key: every constructor argument either changes it or acts after tokenization
AFTER_TOKENIZATION = {"metric", "metric_mode", "label_smoothing", "threshold", "positive_label", "n_best",
                      "max_answer_tokens", "null_threshold", "max_new_tokens", "num_samples", "generation",
                      "cross_attention", "init_seed"}  # the last two build the bert2bert model, not features
CHANGES_FEATURES = {  # task class name -> a non-default value for each argument that preprocess reads
    "SequenceClassification": {"labels": ["neg", "pos"], "multi_label": True, "label_separator": ";"},
    "Regression": {},
    "TokenClassification": {"scheme": "tags", "labels": ["O", "B-PER", "I-PER"], "label_all_subwords": True},
    "QuestionAnswering": {"doc_stride": 32},
    "CausalLM": {"chat_template": False},
    "Seq2Seq": {"max_source_length": 32, "max_target_length": 16, "source_prefix": "summarize: ", "char_level": True},
    "MultipleChoice": {},
}


@pytest.mark.parametrize("name", sorted(CHANGES_FEATURES))
def test_every_setting_that_changes_tokenization_is_in_the_cache_key(name):
    import inspect

    import tunelab.tasks

    cls = getattr(tunelab.tasks, name)
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self"}
    # a new constructor argument must be classified here, so a forgotten cache key fails this test
    assert arguments == AFTER_TOKENIZATION & arguments | set(CHANGES_FEATURES[name])
    default = cls().fingerprint()
    for argument, value in CHANGES_FEATURES[name].items():
        assert cls(**{argument: value}).fingerprint() != default, f"{name}.{argument} is not in fingerprint()"


def test_every_task_class_is_covered_by_the_cache_key_test():
    import tunelab.tasks

    assert set(tunelab.tasks.__all__) - {"Task"} == set(CHANGES_FEATURES)
