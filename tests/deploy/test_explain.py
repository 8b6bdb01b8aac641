"""`tunelab predict RUN --explain` (issue 21, item 5): integrated-gradients attributions per whitespace word, for
classification (the predicted label) and token classification (each word's predicted tag); IG's completeness
holds within captum's delta; other tasks and a missing captum fail with one clear message."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

from helpers.runs import ROOT, quick, train_in_process
from tunelab.cli import main as tunelab
from tunelab.errors import TunelabError

TEXTS = [
    "a gorgeous, witty and moving film .",
    "the cast is fine -- but the script is a dull , lifeless mess",
    "Ça marche",  # accents: the uncased tokenizer strips them, the words stay the input's
]


@pytest.fixture(scope="module")
def classification_run(tiny_backbone, tmp_path_factory):
    run = tmp_path_factory.mktemp("explain") / "classification"
    assert train_in_process(*quick(tiny_backbone, run)) == 0
    return run


@pytest.fixture(scope="module")
def tagging_run(tiny_backbone, tmp_path_factory):
    spec = importlib.util.spec_from_file_location("own_data_demo", ROOT / "scripts" / "own_data_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    folder = tmp_path_factory.mktemp("explain-tagging")
    train, validation, test = demo.write_conll(folder, n_train=40, n_test=8)
    run = folder / "tagging"
    overrides = [
        "task=tagging", "data=files", f"data.loader.train={train}", f"data.loader.validation={validation}",
        f"data.loader.test={test}", "data.loader.tag_column=1",
    ]  # fmt: skip
    assert train_in_process(*quick(tiny_backbone, run, *overrides)) == 0
    return run, [[w for w, _ in s] for s in demo.read_conll(test)[:3]]


def _check_words(entries: list[dict], words: list[str]) -> None:
    assert [e["word"] for e in entries] == words
    values = [e["attribution"] for e in entries]
    assert all(math.isfinite(a) for a in values)
    assert sum(abs(a) for a in values) == pytest.approx(1.0, abs=len(values) * 5e-5 + 1e-9)


def test_cli_adds_word_attributions_for_the_predicted_label(classification_run, tmp_path, outputs):
    inputs, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inputs.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    argv = ["predict", str(classification_run), "-i", str(inputs), "-o", str(out), "--explain", "--explain-steps", "20"]
    assert tunelab(argv) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(TEXTS)
    for text, line in zip(TEXTS, lines):
        explanation = line["explanation"]
        assert explanation["label"] == line["label"]  # the predicted label is the one explained
        _check_words(explanation["words"], text.split())  # "gorgeous," and "--" are one word each, as typed
        assert math.isfinite(explanation["convergence_delta"])
    plain = tmp_path / "plain.jsonl"
    assert tunelab(["predict", str(classification_run), "-i", str(inputs), "-o", str(plain)]) == 0
    assert "explanation" not in plain.read_text()  # only when asked for
    for with_explanation, without in zip(lines, map(json.loads, plain.read_text().splitlines())):
        assert with_explanation["label"] == without["label"]


def test_completeness_within_captums_delta(classification_run):
    """IG's completeness: the raw word attributions sum to logit(input) - logit(baseline), up to captum's delta
    (nothing is lost merging sub-tokens into words, and the baseline is the padded input with [CLS]/[SEP])."""
    import torch

    from tunelab.commands.predict import predict_rows
    from tunelab.deploy.explain import sequence_jobs, word_attributions
    from tunelab.run.record import load_run

    _, module, datamodule, _ = load_run(str(classification_run))
    rows = [{"text": t} for t in TEXTS]
    predictions = predict_rows(module, datamodule, rows)
    tokenizer = datamodule.tokenizer
    jobs = sequence_jobs(module.task, tokenizer, datamodule.max_length, rows, predictions)
    results = word_attributions(module, tokenizer, jobs, n_steps=50, batch_size=2)
    assert [len(raw) for raw, _ in results] == [len(t.split()) for t in TEXTS]
    for row, job, (raw, delta) in zip(rows, jobs, results):
        enc = tokenizer(row["text"], return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask").bool()
        baseline = {**enc, "input_ids": torch.where(special, enc["input_ids"], tokenizer.pad_token_id)}
        with torch.no_grad():
            gain = float(
                module.model(**enc).logits[0, job["target"]] - module.model(**baseline).logits[0, job["target"]]
            )
        assert sum(raw) - gain == pytest.approx(delta, abs=1e-5)
        assert abs(delta) < 0.02 * abs(gain) + 1e-4  # 50 Gauss-Legendre steps: the path integral is close


def test_pair_words_follow_the_text_words(classification_run):
    from tunelab.commands.predict import predict_rows
    from tunelab.deploy.explain import explain_rows
    from tunelab.run.record import load_run

    _, module, datamodule, _ = load_run(str(classification_run))
    rows = [{"text": "a fine film", "text_pair": "said nobody , ever"}]
    predictions = predict_rows(module, datamodule, rows)
    explain_rows(module, datamodule, rows, predictions, n_steps=10)
    explanation = predictions[0]["explanation"]
    both = explanation["words"] + explanation["pair_words"]
    _check_words(both, "a fine film said nobody , ever".split())
    assert [e["word"] for e in explanation["words"]] == ["a", "fine", "film"]


def test_token_classification_explains_each_words_tag(tagging_run):
    from tunelab.commands.predict import predict_rows
    from tunelab.deploy.explain import explain_rows
    from tunelab.run.record import load_run

    run, sentences = tagging_run
    _, module, datamodule, _ = load_run(str(run))
    predictions = []
    for rows in ([{"tokens": s} for s in sentences[:2]], [{"text": " ".join(sentences[2])}]):  # words, or a text
        predictions += predict_rows(module, datamodule, rows)
        explain_rows(module, datamodule, rows, predictions[-len(rows) :], n_steps=10)
    for words, prediction in zip(sentences, predictions):
        explanation = prediction["explanation"]
        assert [(e["word"], e["tag"]) for e in explanation] == [(w["word"], w["tag"]) for w in prediction["words"]]
        assert [e["word"] for e in explanation] == words  # one explanation per word of the sentence
        for entry in explanation:
            _check_words(entry["words"], words)
            assert math.isfinite(entry["convergence_delta"])


def test_a_task_without_explanations_says_so():
    from tunelab.deploy.explain import check_explainable
    from tunelab.tasks.seq2seq import Seq2Seq

    with pytest.raises(
        TunelabError, match=r"this run is task=seq2seq, whose answers have no per-word explanation"
    ) as err:
        check_explainable(SimpleNamespace(task=Seq2Seq(), model=None))
    assert "Run tunelab predict without --explain." in str(err.value)


def test_missing_captum_names_the_extra(classification_run, tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text("a fine film\n")
    monkeypatch.setitem(sys.modules, "captum", None)  # import captum -> ImportError, as when not installed
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    assert tunelab(["predict", str(classification_run), "-i", str(inputs), "--explain"]) == 2
    captured = capsys.readouterr()
    assert "needs captum, which is not installed" in captured.err
    assert "pip install 'tunelab[explain]'" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""  # refused before anything is predicted


def test_explain_steps_must_be_positive(classification_run, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text("a fine film\n")
    assert tunelab(["predict", str(classification_run), "-i", str(inputs), "--explain", "--explain-steps", "0"]) == 2
    assert "--explain-steps must be a whole number of at least 1, got 0." in capsys.readouterr().err


def test_help_does_not_import_captum():
    code = (
        "import sys; from tunelab.cli import main; import tunelab.commands.predict; sys.exit('captum' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0


def test_multilabel_explains_its_top_label_and_regression_its_score(tiny_backbone):
    from transformers import AutoTokenizer

    from tunelab.deploy.explain import sequence_jobs
    from tunelab.tasks.classification import SequenceClassification
    from tunelab.tasks.regression import Regression

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    multilabel = SequenceClassification(labels=["action", "comedy", "drama"], multi_label=True)
    rows = [{"text": "a funny , sad film"}]
    predictions = [{"labels": ["comedy", "drama"], "scores": {"action": 0.1, "comedy": 0.6, "drama": 0.9}}]
    [job] = sequence_jobs(multilabel, tokenizer, 128, rows, predictions)
    assert job["target"] == 2 and predictions[0]["explanation"] == {"label": "drama"}
    assert job["words"] == ["a", "funny", ",", "sad", "film"]
    predictions = [{"score": 3.2}]
    [job] = sequence_jobs(Regression(), tokenizer, 128, [{"text": "a film", "text_pair": "one film"}], predictions)
    assert job["target"] == 0 and job["n_text"] == 2 and job["words"] == ["a", "film", "one", "film"]
    assert job["token_words"] == [-1, 0, 1, -1, 2, 3, -1]  # [CLS] a film [SEP] one film [SEP]
