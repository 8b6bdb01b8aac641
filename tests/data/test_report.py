"""What tokenization does to the user's data, said at set-up (issue 17, items 3 and 6): rows cut per split
with the length that keeps 95% whole, and the tokenizer's fit ([UNK], characters its normalization changes)
with a multilingual-backbone warning; seq2seq scored against the raw references."""

from __future__ import annotations

import csv
import json
import math
from functools import partial

import lightning  # noqa: F401  (before any capsys test: Lightning's log handler keeps the stderr it finds)
import numpy as np

from helpers.runs import quick, read_metrics, train_in_process
from tunelab.data import TuneDataModule
from tunelab.data.sources import files
from tunelab.tasks.classification import SequenceClassification

SPANISH = [
    "El niño pequeño comió una piña en la montaña",
    "La señora española bebió café con azúcar",
    "Mañana iré al campo con mi compañero",
    "El camión rojo está en la estación de autobús",
]


def _csv(path, texts, labels=("pos", "neg")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "stars"])
        for i, text in enumerate(texts):
            w.writerow([text, labels[i % len(labels)]])
    return path


def test_truncation_is_reported_per_split_with_the_length_keeping_95_percent(tiny_backbone, tmp_path, outputs, capsys):
    from transformers import AutoTokenizer

    texts = [" ".join(["word"] * (3 + 2 * i)) for i in range(40)]
    path = _csv(tmp_path / "reviews.csv", texts)
    run = tmp_path / "run"
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "data=files",
                f"data.loader.train={path}",
                "data.columns.text=review",
                "data.columns.label=stars",
                "data.max_length=20",
            )
        )
        == 0
    )
    out = capsys.readouterr().out
    # the same rows, measured here with the tokenizer itself: tunelab's own split of train
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    dm = TuneDataModule(
        loader=partial(files, train=str(path)),
        task=SequenceClassification(),
        tokenizer=tiny_backbone,
        columns={"text": "review", "label": "stars"},
        max_length=20,
        cache=False,
    )
    train = dm._raw_splits()["train"]
    lengths = np.array([len(tok(t)["input_ids"]) for t in train["text"]])
    cut, keeps = int((lengths > 20).sum()), math.ceil(np.percentile(lengths, 95))
    assert cut > 0
    assert (
        f"WARNING data: {cut} of {len(lengths)} train rows ({100 * cut / len(lengths):.1f}%) have their text cut at "
        f"data.max_length=20 tokens (longest {lengths.max()}); data.max_length={keeps} keeps 95% whole."
    ) in out
    assert "validation rows" in out or "data: validation text: none cut at data.max_length=20" in out
    assert read_metrics(run)["metrics"]  # a warning, not an error


def test_accents_stripped_by_an_uncased_tokenizer_warn_and_cache_hit_repeats(
    tiny_backbone, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("tunelab.assets.cache_dir", lambda: tmp_path / "cache")
    path = _csv(tmp_path / "es.csv", SPANISH * 5)

    def setup():
        dm = TuneDataModule(
            loader=partial(files, train=str(path)),
            task=SequenceClassification(),
            tokenizer=tiny_backbone,
            columns={"text": "review", "label": "stars"},
        )
        dm.setup()
        return dm, capsys.readouterr().out

    dm, out = setup()
    fit = dm.data_report["tokenizer_fit"]
    chars = [c for t in dm._raw_splits()["train"]["text"] for c in t if not c.isspace()]
    accented = sum(c in "ñáéíóú" for c in chars)
    assert fit["changed_share"] == accented / len(chars)  # every accented letter, and lower-casing not counted
    assert fit["changed_examples"]["ñ"] == "n"
    assert "WARNING data: the tokenizer of " in out and "'ñ'->'n'" in out and "model.backbone=<Hub id>" in out
    again = setup()[1]  # a cache hit reads no file but says the same
    assert getattr(setup()[0], "tokenized_from_cache", False) and "'ñ'->'n'" in again


def test_english_data_gets_no_tokenizer_warning(tiny_backbone, tmp_path, mr_csv, capsys):
    dm = TuneDataModule(
        loader=partial(files, train=str(mr_csv)),
        task=SequenceClassification(),
        tokenizer=tiny_backbone,
        columns={"text": "review", "label": "sentiment"},
        cache=False,
    )
    dm.setup()
    out = capsys.readouterr().out
    assert "data: tokenizer of " in out and "fits this data poorly" not in out
    assert dm.data_report["tokenizer_fit"]["unk_share"] < 0.01


def test_seq2seq_is_scored_against_raw_references(tiny_backbone, tmp_path, outputs):
    """An uncased tokenizer decodes "Niño" as "nino": against the normalized reference a model that only ever
    copies would score 100; against the raw one, the lost accent and case count."""
    from tunelab.run.record import load_run

    path = tmp_path / "pairs.jsonl"
    words = ["Niño", "Señor", "Año", "Mañana"] * 6
    path.write_text("".join(json.dumps({"src": w, "tgt": w}) + "\n" for w in words))
    run = tmp_path / "run"
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "task=seq2seq",
                "data=files",
                f"data.loader.train={path}",
                "data.columns.text=src",
                "data.columns.target=tgt",
                "task.generation.max_new_tokens=4",
            )
        )
        == 0
    )
    _, module, datamodule, _ = load_run(str(run))
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    module.task.collate(datamodule.tokenizer)
    refs = module.task.references(batch)
    assert set(refs) <= set(words) and any("ñ" in r for r in refs)  # as written, not "nino"
