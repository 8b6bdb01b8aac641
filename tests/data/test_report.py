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
        dm.task.setup(dm.tokenizer, dm.learn_labels())
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
    dm.task.setup(dm.tokenizer, dm.learn_labels())
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


def _rows(**columns):
    import datasets

    return datasets.Dataset.from_dict(columns)


def test_question_answering_counts_rows_needing_more_than_one_window_and_answers_no_window_holds(tiny_backbone):
    """One window per row up to max_length (question + context + 3 special tokens); longer contexts are split
    into overlapping windows: reported, not a warning, unless an answer crosses every window's edge."""
    from transformers import AutoTokenizer

    from tunelab.data import report
    from tunelab.tasks.question_answering import QuestionAnswering

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    contexts = [" ".join(["word"] * n) + " Paris is the answer ." for n in (2, 5, 10, 40, 80)]
    questions = ["where is it ?"] * len(contexts)
    answers = [{"text": ["Paris"], "answer_start": [c.index("Paris")]} for c in contexts]
    splits = {"train": _rows(question=questions, context=contexts, answers=answers)}
    task = QuestionAnswering(doc_stride=4)
    r = report.truncation(splits, task, tok, max_length=32)["train"]["question + context"]
    lengths = np.array([len(tok(q, c)["input_ids"]) for q, c in zip(questions, contexts)])
    assert (r["rows"], r["cut"], r["longest"]) == (5, int((lengths > 32).sum()), int(lengths.max())) and r["cut"] == 2
    assert r["keeps_95"] == math.ceil(np.percentile(lengths, 95)) and r["answers_lost"] == 0
    [line] = report.lines({"truncation": {"train": {"question + context": r}}}, "tiny")
    assert line == (
        f"data: 2 of 5 train rows (40.0%) need more than one window at data.max_length=32 tokens (question + "
        f"context, longest {lengths.max()}; the context is split into windows overlapping by task.doc_stride "
        f"tokens); data.max_length={r['keeps_95']} keeps 95% in one window."
    )
    # an answer longer than a window's room can be in no window whole: that row trains as "no answer"
    long_answer = " ".join(["paris"] * 30)
    lost = {"train": _rows(question=["where ?"], context=[long_answer + " ."], answers=[
        {"text": [long_answer], "answer_start": [0]}])}  # fmt: skip
    r = report.truncation(lost, task, tok, max_length=32)["train"]["question + context"]
    assert r["answers_lost"] == 1
    assert "WARNING data: 1 of 1 train rows have their answer in no single window" in "\n".join(
        report.lines({"truncation": {"train": {"question + context": r}}}, "tiny")
    )


def test_multiple_choice_counts_rows_with_a_cut_context_choice_pair(tiny_backbone):
    from transformers import AutoTokenizer

    from tunelab.data import report
    from tunelab.tasks.multiple_choice import MultipleChoice

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = ["the cat sat on the mat", "a dog ran", " ".join(["long"] * 30)]
    choices = [["and slept", "and " + " ".join(["ate"] * 20)], ["away", "home"], ["yes", "no"]]
    splits = {"validation": _rows(text=texts, choices=choices, label=[0, 1, 0])}
    r = report.truncation(splits, MultipleChoice(), tok, max_length=24)["validation"]["text + choice"]
    longest_pair = [max(len(tok(t, c)["input_ids"]) for c in cs) for t, cs in zip(texts, choices)]
    assert r["cut"] == sum(n > 24 for n in longest_pair) == 2  # row 0 by its long choice, row 2 by its context
    assert (r["rows"], r["longest"], r["keeps_95"]) == (
        3,
        max(longest_pair),
        math.ceil(np.percentile(longest_pair, 95)),
    )
    assert (
        f"WARNING data: 2 of 3 validation rows (66.7%) have their text + choice cut at data.max_length=24 tokens "
        f"(longest {max(longest_pair)}); data.max_length={r['keeps_95']} keeps 95% whole."
    ) in report.lines({"truncation": {"validation": {"text + choice": r}}}, "tiny")


def test_seq2seq_targets_are_measured_against_the_max_target_length_as_set(tiny_backbone):
    """The limit printed is task.max_target_length as the user set it (not + 1 for the [CLS] the task drops)."""
    from transformers import AutoTokenizer

    from tunelab.data import report
    from tunelab.tasks.seq2seq import Seq2Seq

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    targets = ["one two three", "one two three four five six seven"]  # 4 and 8 target tokens with the [SEP]
    splits = {"train": _rows(text=["a", "b"], target=targets)}
    r = report.truncation(splits, Seq2Seq(max_target_length=6), tok, max_length=32)["train"]["target"]
    assert (r["limit"], r["cut"], r["longest"]) == (6, 1, len(tok(targets[1])["input_ids"]) - 1) and r["longest"] == 8
    assert (
        "at task.max_target_length=6 tokens (longest 8)"
        in report.lines({"truncation": {"train": {"target": r}}}, "t")[0]
    )
