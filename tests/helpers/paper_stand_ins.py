"""Offline stand-ins for the Hub datasets the paper configs name (GLUE, CoNLL-2003, SQuAD): same columns, a
few rows, so tests/experiments/test_paper_configs.py dry-runs each paper config end to end."""

from __future__ import annotations

import datasets

GLUE, CONLL, SQUAD = "nyu-mll/glue", "eriktks/conll2003", "rajpurkar/squad"
GLUE_LABELS = {
    "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"],
    "rte": ["entailment", "not_entailment"],
}
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def glue_like(path: str, name: str, revision=None, trust_remote_code=False):
    """A stand-in for datasets.load_dataset('nyu-mll/glue', name): same columns and label type, 48 rows."""
    assert path == GLUE
    rows = range(48)
    if name == "sst2":
        cols = {"sentence": [f"a {'good' if i % 2 else 'bad'} film number {i}" for i in rows]}
    else:
        cols = {
            "sentence1": [f"the first sentence {i}" for i in rows],
            "sentence2": [f"a second one {i % 5}" for i in rows],
        }
    cols["label"] = [float(i % 5) for i in rows] if name == "stsb" else [i % 2 for i in rows]
    features = datasets.Features(
        {
            **{c: datasets.Value("string") for c in cols if c != "label"},
            "label": datasets.Value("float32") if name == "stsb" else datasets.ClassLabel(names=GLUE_LABELS[name]),
        }
    )
    split = datasets.Dataset.from_dict(cols, features=features)
    return datasets.DatasetDict({"train": split, "validation": split.select(range(16))})


def conll_like(path: str, name=None, revision=None, trust_remote_code=False):
    """A stand-in for eriktks/conll2003: words, and NER tags as ClassLabel ids; train/validation/test."""
    assert path == CONLL and revision == "refs/convert/parquet"
    people, places = ["Smith", "Jones", "Brown"], ["Paris", "Berlin", "Tokyo"]
    rows = {"id": [], "tokens": [], "ner_tags": []}
    for i in range(48):
        rows["id"].append(str(i))
        rows["tokens"].append(["John", people[i % 3], "flew", "to", places[i % 3], "for", "the", "EU", "summit", "."])
        rows["ner_tags"].append([1, 2, 0, 0, 5, 0, 0, 3, 0, 0])
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=CONLL_TAGS)),
        }
    )
    split = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(
        {"train": split, "validation": split.select(range(16)), "test": split.select(range(16, 32))}
    )


def squad_like(path: str, name=None, revision=None, trust_remote_code=False):
    """A stand-in for rajpurkar/squad: contexts longer than a window (so they are cut with doc_stride),
    one gold answer per training question, three per dev question as in SQuAD's dev set."""
    assert path == SQUAD
    filler = " ".join(f"word{j}" for j in range(40))
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for i in range(64):
        answer = f"{1900 + i}"
        context = f"{filler}. The bridge over river {i} was opened in {answer} by the city. {filler}."
        start = context.index(answer)
        n = 3 if i >= 48 else 1
        rows["id"].append(f"q{i}")
        rows["title"].append("bridges")
        rows["context"].append(context)
        rows["question"].append(f"When was bridge {i} opened?")
        rows["answers"].append({"text": [answer] * n, "answer_start": [start] * n})
    split = datasets.Dataset.from_dict(rows)
    return datasets.DatasetDict({"train": split.select(range(48)), "validation": split.select(range(48, 64))})


STAND_INS = {GLUE: "glue_like", CONLL: "conll_like", SQUAD: "squad_like"}
