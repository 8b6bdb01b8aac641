"""Token classification head: sub-word label alignment, loss, seqeval metrics, predict and export."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from helpers.runs import quick, read_metrics, train_in_process
from helpers.tasks import load_tokenizer_stub, loss_falls
from tunelab.errors import TunelabError
from tunelab.tasks import TokenClassification

NER_ROWS = [
    {"tokens": ["Angela", "Merkel", "visited", "Paris"], "tags": ["B-PER", "I-PER", "O", "B-LOC"]},
    {"tokens": ["The", "glorpification", "Rome"], "tags": ["O", "O", "B-LOC"]},
    {"tokens": ["Bob", "stayed"], "tags": ["B-PER", "O"]},
]


def _features(task, rows):
    task.setup(load_tokenizer_stub(), task.labels_from(datasets.Dataset.from_list(rows)))
    return task.preprocess({k: [r[k] for r in rows] for k in rows[0]}, load_tokenizer_stub(), 32)


def test_bio_labels_get_both_prefixes_and_first_subword_alignment():
    task = TokenClassification(scheme="bio")
    features = _features(task, NER_ROWS)
    assert task.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # I-LOC added though unseen
    # "glorpification" is split into g ##lor ##pi ##fication: only the first is labelled
    word_ids, labels = features["word_ids"][1], features["labels"][1]
    pieces = [i for i, w in enumerate(word_ids) if w == 1]
    assert len(pieces) > 1
    assert labels[pieces[0]] == 0 and all(labels[i] == -100 for i in pieces[1:])
    assert labels[0] == -100 and word_ids[0] == -1  # [CLS]


def test_label_all_subwords_turns_b_into_i_on_continuations():
    rows = [{"tokens": ["Schwarzenegger", "won"], "tags": ["B-PER", "O"]}]
    task = TokenClassification(scheme="bio", labels=["O", "B-PER", "I-PER"], label_all_subwords=True)
    features = _features(task, rows)
    pieces = [lab for w, lab in zip(features["word_ids"][0], features["labels"][0]) if w == 0]
    assert len(pieces) > 1 and pieces[0] == 1 and set(pieces[1:]) == {2}  # B-PER then I-PER


def test_tagging_loss_falls_on_a_fixed_batch(tiny_backbone):
    rows = [
        {"tokens": ["the", "dog", "runs"], "tags": ["DT", "NN", "VBZ"]},
        {"tokens": ["a", "cat", "sleeps", "here"], "tags": ["DT", "NN", "VBZ", "RB"]},
        {"tokens": ["dogs", "run"], "tags": ["NNS", "VBP"]},
    ]
    task = TokenClassification(scheme="tags", metric="val/accuracy")
    losses, module, _ = loss_falls(tiny_backbone, task, rows, steps=40)
    assert task.labels == ["DT", "NN", "NNS", "RB", "VBP", "VBZ"]
    assert losses[-1] < 0.3 * losses[0]
    assert module.model.config.id2label[5] == "VBZ"


def test_metrics_match_hand_computed():
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    task = TokenClassification(scheme="bio", labels=labels)
    metrics = task.metrics()
    ids = {t: i for i, t in enumerate(labels)}
    # sentence 1 truth: [B-PER I-PER O B-LOC], predicted [B-PER O O B-LOC]
    # sentence 2 truth: [O B-LOC I-LOC],        predicted [O B-LOC I-LOC]
    truth = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "I-LOC"]
    guess = ["B-PER", "O", "O", "B-LOC", "O", "B-LOC", "I-LOC"]
    first = [1, 0, 0, 0, 1, 0, 0]
    for metric in metrics.values():
        metric.update(torch.tensor([ids[t] for t in guess]), torch.tensor([ids[t] for t in truth]), torch.tensor(first))
    got = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # entities: truth {PER(0-1), LOC(3), LOC(1-2 of s2)}; predicted {PER(0), LOC(3), LOC(s2)}:
    # 2 correct of 3 predicted and of 3 true -> P = R = F1 = 2/3; words: 6 of 7 right
    assert got == {"accuracy": round(6 / 7, 4), "precision": 0.6667, "recall": 0.6667, "f1": 0.6667}


def test_update_metrics_reads_first_subwords_only():
    task = TokenClassification(scheme="tags", labels=["A", "B"], metric="val/accuracy")
    metrics = task.metrics()
    word_ids = torch.tensor([[-1, 0, 0, 1, -1], [-1, 0, -1, -1, -1]])
    labels = torch.tensor([[-100, 0, -100, 1, -100], [-100, 1, -100, -100, -100]])
    logits = torch.zeros(2, 5, 2)
    logits[0, 1, 0] = logits[0, 2, 1] = logits[0, 3, 0] = logits[1, 1, 1] = 5.0  # word 0 right, word 1 wrong, s2 right
    task.update_metrics(metrics, None, type("Out", (), {"logits": logits})(), {"word_ids": word_ids, "labels": labels})
    assert metrics.compute()["accuracy"].item() == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "rows,message",
    [
        (
            [{"tokens": ["Paris"], "tags": ["B-CITY"]}],
            r"tag 'B-CITY' is not in the label set \['O', 'B-LOC', 'I-LOC'\]",
        ),
        ([{"tokens": ["Paris", "now"], "tags": ["B-LOC"]}], r"2 words but 1 tags"),
    ],
)
def test_bad_rows_are_named(rows, message):
    task = TokenClassification(scheme="bio", labels=["O", "B-LOC"])
    with pytest.raises(TunelabError, match=message):
        task.preprocess({k: [r[k] for r in rows] for k in rows[0]}, load_tokenizer_stub(), 16)


def test_a_non_bio_tag_in_the_training_split_is_named():
    task = TokenClassification(scheme="bio")
    with pytest.raises(TunelabError, match=r"tag 'NN' is not a BIO tag.*task.scheme=tags"):
        task.labels_from(datasets.Dataset.from_list([{"tokens": ["dog"], "tags": ["NN"]}]))


def test_ner_run_predicts_entities_with_spans_and_exports_a_pipeline(tiny_backbone, tmp_path, capsys):
    from transformers import pipeline

    from tunelab.commands.export import export_run
    from tunelab.commands.predict import predict_rows
    from tunelab.run.record import load_run

    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "task=token_classification",
            "data=hironsan_ner",
            "task.labels=[O,B-ART,B-DAT,B-LOC,B-MON,B-ORG,B-PER,B-PSN,B-TIM]",
        )
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    metrics = read_metrics(run)["metrics"]
    assert {"test/f1", "test/precision", "test/recall", "test/accuracy"} <= set(metrics)
    _, module, datamodule, _ = load_run(str(run))
    text = "2005 年 7 月 、 東京 で"
    [row] = predict_rows(module, datamodule, [{"text": text}])
    [listed] = predict_rows(module, datamodule, [{"text": ["東京", "で"]}])  # pre-split words (JSONL)
    assert [w["word"] for w in row["words"]] == text.split()
    assert all(text[w["start"] : w["end"]] == w["word"] for w in row["words"])
    assert all(w["tag"] in module.task.labels for w in row["words"]) and "entities" in row
    assert [(w["word"], w["start"], w["end"]) for w in listed["words"]] == [("東京", 0, 2), ("で", 3, 4)]

    folder = export_run(str(run), str(tmp_path / "export"))
    tagger = pipeline("token-classification", model=str(folder))
    out = tagger("2005 年 7 月")
    assert out and {o["entity"] for o in out} <= set(module.task.labels)
    assert json.loads((folder / "config.json").read_text())["id2label"]["0"] == "O"
