"""test_predictions.jsonl for every head: one row per test example, gold as the data has it, per-row
scores that add up to the run's own test metric, and compare's per-example tests on a 2-run sweep."""

from __future__ import annotations

import json
import math

import pytest

from helpers.runs import read_metrics, tiny_run, train_in_process
from tunelab.cli import main
from tunelab.run.record import load_run

TEST_ROWS = 16
NER_LABELS = "task.labels=[O,B-ART,B-DAT,B-LOC,B-MON,B-ORG,B-PER,B-PSN,B-TIM]"


def _sweep(backbone: str, folder, *extra: str) -> list[dict]:
    """Two runs (two learning rates) of one head; returns run 0's file rows."""
    code = train_in_process(
        "-m", *tiny_run(backbone), *extra, "optimizer.lr=1e-4,3e-3", "seed=1", f"hydra.sweep.dir={folder}"
    )
    assert code == 0
    rows = [json.loads(line) for line in (folder / "0" / "test_predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(TEST_ROWS))  # every test row once, in split order
    return rows


def _tokenized_test(run_dir):
    """The run's test split as its own preprocessing made it: the gold answers seen from the other side."""
    _, _, datamodule, _ = load_run(str(run_dir))
    datamodule.setup("test")
    return datamodule, datamodule.splits["test"]


def _per_example_line(folder, capsys) -> str:
    capsys.readouterr()
    assert main(["compare", str(folder)]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Per example"))


def test_ner_rows_score_entity_f1(tiny_backbone, outputs, tmp_path, capsys):
    from seqeval.metrics import f1_score

    folder = tmp_path / "ner"
    rows = _sweep(tiny_backbone, folder, "task=token_classification", "data=hironsan_ner", NER_LABELS)
    datamodule, split = _tokenized_test(folder / "0")
    labels = datamodule.task.labels
    for row, features in zip(
        rows, split, strict=True
    ):  # gold = the tags of each word's first sub-word, as the loss saw them
        assert row["gold"] == [labels[t] for t in features["labels"] if t != -100]
        assert len(row["prediction"]) == len(row["gold"]) and row["measure"] == "entity F1"
        if row["correct"]:
            assert row["score"] == 1.0
    metrics = read_metrics(folder / "0")["metrics"]
    assert f1_score([r["gold"] for r in rows], [r["prediction"] for r in rows]) == pytest.approx(metrics["test/f1"])
    with_entities = next(r for r in rows if any(t != "O" for t in r["gold"]))
    assert with_entities["score"] == pytest.approx(f1_score([with_entities["gold"]], [with_entities["prediction"]]))
    line = _per_example_line(folder, capsys)
    assert f"Per example ({TEST_ROWS} shared test rows, each row's entity F1" in line and "exact McNemar" in line


def test_pos_rows_score_word_accuracy(tiny_backbone, outputs, tmp_path, capsys):
    folder = tmp_path / "pos"
    rows = _sweep(tiny_backbone, folder, "task=tagging", "data=oanc_pos")
    words = sum(len(r["gold"]) for r in rows)
    right = sum(r["score"] * len(r["gold"]) for r in rows)  # per-row accuracy, weighted by words: the metric
    assert right / words == pytest.approx(read_metrics(folder / "0")["metrics"]["test/accuracy"])
    assert all(isinstance(t, str) for r in rows for t in r["gold"])
    assert "each row's word accuracy" in _per_example_line(folder, capsys)


def test_qa_rows_score_token_f1_and_exact_match(tiny_backbone, outputs, tmp_path, capsys):
    folder = tmp_path / "qa"
    rows = _sweep(tiny_backbone, folder, "task=question_answering", "data=lee_qa", "data.max_length=128")
    _, split = _tokenized_test(folder / "0")
    golds = {features["idx"]: json.loads(features["golds"]) for features in split}  # every window carries them
    assert [r["gold"] for r in rows] == [golds[i] for i in range(TEST_ROWS)]
    assert any(r["gold"] == [] for r in rows) and any(r["gold"] for r in rows)  # lee_qa has unanswerable ones
    metrics = read_metrics(folder / "0")["metrics"]
    assert 100 * sum(r["score"] for r in rows) / TEST_ROWS == pytest.approx(metrics["test/f1"], abs=1e-3)
    assert 100 * sum(r["correct"] for r in rows) / TEST_ROWS == pytest.approx(metrics["test/exact_match"], abs=1e-3)
    line = _per_example_line(folder, capsys)
    assert "each row's token F1" in line and "exact McNemar" in line


def test_seq2seq_rows_score_sentence_chrf(tiny_backbone, outputs, tmp_path, capsys):
    import sacrebleu

    folder = tmp_path / "seq2seq"
    rows = _sweep(
        tiny_backbone,
        folder,
        "task=seq2seq",
        "data=celex_plurals",
        "task.char_level=true",
        "task.max_target_length=12",
        "task.generation.max_new_tokens=6",
        "task.metric=val/bleu",  # corpus BLEU has no per-row share: sentence chrF stands in
    )
    _, split = _tokenized_test(folder / "0")
    assert [r["gold"] for r in rows] == list(split["reference"])
    for row in rows:
        assert row["score"] == pytest.approx(sacrebleu.sentence_chrf(row["prediction"], [row["gold"]]).score / 100)
    exact = read_metrics(folder / "0")["metrics"]["test/exact_match"]
    assert 100 * sum(r["correct"] for r in rows) / TEST_ROWS == pytest.approx(exact)
    assert "each row's sentence chrF" in _per_example_line(folder, capsys)


def test_causal_lm_rows_score_their_loss(tiny_llama, outputs, tmp_path, capsys):
    folder = tmp_path / "lm"
    rows = _sweep(
        tiny_llama,
        folder,
        "task=causal_lm",
        "data=lee_instructions",
        "task.max_new_tokens=4",
        f"data.max_samples={{train: 16, validation: 8, test: {TEST_ROWS}}}",
    )
    datamodule, split = _tokenized_test(folder / "0")
    tokenizer = datamodule.tokenizer
    for row, features in zip(rows, split, strict=True):  # gold = the response the loss scored (its tokens + eos)
        scored = [t for t in features["labels"] if t != -100]
        assert tokenizer(row["gold"], add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id] == scored
        assert row["tokens"] == len(scored) and row["score"] == -row["loss"] and isinstance(row["prediction"], str)
    # token-weighted mean loss of the rows, exponentiated: the run's test perplexity
    mean = sum(r["loss"] * r["tokens"] for r in rows) / sum(r["tokens"] for r in rows)
    assert math.exp(mean) == pytest.approx(read_metrics(folder / "0")["metrics"]["test/perplexity"], rel=1e-4)
    line = _per_example_line(folder, capsys)
    assert "each row's minus token-mean loss" in line and "McNemar" not in line
