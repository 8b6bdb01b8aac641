"""A new user's own files, end to end (issue 17, "done when"): a CoNLL tagging file, a seq2seq JSONL under its own
keys and a French ';'-separated classification CSV each train with only task=, data=files, data.loader.* and
data.columns.* (plus the tiny backbone and run size), predict, export, and load without tunelab. The files are
written by scripts/own_data_demo.py (which runs the same flows on MiniLM with the real numbers, docs/data.md)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from helpers.runs import ROOT, quick, read_metrics, train_in_process
from tunelab.cli import main as tunelab

spec = importlib.util.spec_from_file_location("own_data_demo", ROOT / "scripts" / "own_data_demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)


def _train(backbone, run: Path, *overrides: str) -> dict:
    assert train_in_process(*quick(backbone, run, *overrides)) == 0
    return read_metrics(run)["metrics"]


def _predict(run: Path, rows: list[dict], tmp_path: Path) -> list[dict]:
    inputs, out = tmp_path / f"{run.name}-in.jsonl", tmp_path / f"{run.name}-out.jsonl"
    inputs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert tunelab(["predict", str(run), "--input", str(inputs), "--output", str(out)]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _export(run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / f"{run.name}-export"
    assert tunelab(["export", str(run), "--out", str(folder)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in folder.iterdir()}
    return folder


def test_conll_tagging_file(tiny_backbone, tmp_path, outputs):
    train, validation, test = demo.write_conll(tmp_path, n_train=60, n_test=12)
    assert train.read_text().startswith("-DOCSTART-\t-X-\t_\n\n")
    run = tmp_path / "tagging"
    metrics = _train(
        tiny_backbone, run, "task=tagging", "data=files", f"data.loader.train={train}",
        f"data.loader.validation={validation}", f"data.loader.test={test}", "data.loader.tag_column=1",
    )  # fmt: skip
    assert 0 <= metrics["test/accuracy"] <= 1
    sentences = demo.read_conll(test)
    tags = {t for s in demo.read_conll(train) for _, t in s}
    preds = _predict(run, [{"tokens": [w for w, _ in s]} for s in sentences], tmp_path)
    assert [[p["word"] for p in row["words"]] for row in preds] == [[w for w, _ in s] for s in sentences]
    assert {p["tag"] for row in preds for p in row["words"]} <= tags  # the tags of column 1, not the "_" of column 2
    from transformers import pipeline

    tagged = pipeline("token-classification", model=str(_export(run, tmp_path)))("The cat sat on the mat .")
    assert tagged and {e["entity"] for e in tagged} <= tags
    assert 0 <= demo.tag_baseline(train, test) <= 1


def test_seq2seq_jsonl_with_its_own_keys(tiny_backbone, tmp_path, outputs):
    path = demo.write_plurals(tmp_path, n=60)
    assert set(json.loads(path.read_text().splitlines()[0])) == {"singular", "plural"}
    run = tmp_path / "seq2seq"
    metrics = _train(
        tiny_backbone, run, "task=seq2seq", "data=files", f"data.loader.train={path}", "data.columns.text=singular",
        "data.columns.target=plural", "task.generation.max_new_tokens=4",
    )  # fmt: skip
    assert 0 <= metrics["test/exact_match"] <= 100
    words = ["house", "box", "city"]
    preds = _predict(run, [{"singular": w} for w in words], tmp_path)  # the training key, not "text"
    assert len(preds) == 3 and all(isinstance(p["generated"], str) for p in preds)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = _export(run, tmp_path)
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForSeq2SeqLM.from_pretrained(folder)
    generated = model.generate(**tok(words, return_tensors="pt", padding=True), max_new_tokens=4)
    assert len(tok.batch_decode(generated, skip_special_tokens=True)) == 3
    assert demo.copy_baseline([json.loads(x) for x in path.read_text().splitlines()]) == 0.0  # a plural differs
    pairs = [json.loads(x) for x in path.read_text().splitlines()]
    regular = sum(p["plural"] == p["singular"] + "s" for p in pairs[:4])
    assert demo.append_s_baseline(path, [{"gold": p["plural"]} for p in pairs[:4]]) == 100 * regular / 4


@pytest.mark.skipif(not (demo.LOCALE / "git.mo").exists(), reason="no French gettext catalogs on this system")
def test_french_semicolon_csv(tiny_backbone, tmp_path, outputs, capsys):
    train, test = demo.write_french(tmp_path, per_program=20)
    assert train.read_text(encoding="utf-8").startswith("message;programme\n")
    run = tmp_path / "classification"
    metrics = _train(
        tiny_backbone, run, "data=files", f"data.loader.train={train}", f"data.loader.test={test}",
        "data.loader.delimiter=';'", "data.columns.text=message", "data.columns.label=programme",
    )  # fmt: skip
    assert 0 <= metrics["test/accuracy"] <= 1
    assert "WARNING data: the tokenizer of " in capsys.readouterr().out  # accents stripped by the uncased tokenizer
    rows = list(csv.DictReader(open(test, encoding="utf-8"), delimiter=";"))
    assert any(c > "\x7f" for r in rows for c in r["message"])  # "é", "è", "à": real French
    preds = _predict(run, [{"message": r["message"]} for r in rows], tmp_path)
    assert len(preds) == len(rows) and {p["label"] for p in preds} <= set(demo.PROGRAMS)
    from transformers import pipeline

    piped = pipeline("text-classification", model=str(_export(run, tmp_path)))(
        [r["message"] for r in rows], truncation=True
    )
    assert [p["label"] for p in piped] == [p["label"] for p in preds]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(piped, preds))
    assert demo.majority_baseline(train, test) < 0.5  # four programs, about a quarter each
