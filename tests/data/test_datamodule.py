"""TuneDataModule: splits, the cache hit and missed, dynamic padding, order of predictions, bad data."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from tunelab.data import TuneDataModule
from tunelab.data.sources import builtin, files
from tunelab.errors import TunelabError
from tunelab.tasks import SequenceClassification


@pytest.fixture
def cache(tmp_path, monkeypatch):
    from tunelab import assets

    real = assets.cache_dir()
    monkeypatch.setattr("tunelab.assets.cache_dir", lambda: tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    for sub in ("models", "data"):  # the fetched assets stay where they are
        (tmp_path / "cache" / sub).symlink_to(real / sub)
    return tmp_path / "cache"


def mr(tokenizer, **kwargs):
    return TuneDataModule(loader=partial(builtin, "mr"), task=SequenceClassification(), tokenizer=tokenizer, **kwargs)


def ready(dm):
    """Wired as tunelab.commands.parts.build wires it: the labels the data learnt go to the task, then tokenize."""
    dm.task.setup(dm.tokenizer, dm.learn_labels())
    dm.setup()
    return dm


def test_default_split_is_80_10_10_and_deterministic(tiny_backbone, cache):
    a, b = mr(tiny_backbone), mr(tiny_backbone)
    ready(a), ready(b)
    assert {s: len(d) for s, d in a.splits.items()} == {"train": 3200, "validation": 400, "test": 400}
    assert a.splits["test"]["input_ids"] == b.splits["test"]["input_ids"]
    assert a.task.labels == ["negative", "positive"]
    c = mr(tiny_backbone, split_seed=7)
    ready(c)
    assert c.splits["test"]["input_ids"] != a.splits["test"]["input_ids"]


def test_second_setup_reads_the_cache_and_tokenizes_nothing(tiny_backbone, cache, monkeypatch):
    first = mr(tiny_backbone)
    ready(first)
    assert not getattr(first, "tokenized_from_cache", False)
    calls = []
    monkeypatch.setattr(SequenceClassification, "preprocess", lambda *a, **k: calls.append(1))
    second = mr(tiny_backbone)
    ready(second)
    assert calls == [] and second.tokenized_from_cache
    assert second.learn_labels()["labels"] == ["negative", "positive"]  # the label set comes back with the cache
    assert second.task.labels == ["negative", "positive"]
    assert second.splits["train"]["input_ids"][:5] == first.splits["train"]["input_ids"][:5]
    third = mr(tiny_backbone, max_length=16)  # a different recipe is a different cache entry
    assert third.cache_key() != first.cache_key()


def test_learn_labels_returns_the_label_set_and_leaves_the_task_alone(tiny_backbone, cache, mr_csv):
    task = SequenceClassification()
    dm = TuneDataModule(
        loader=partial(files, train=str(mr_csv)),
        task=task,
        tokenizer=tiny_backbone,
        columns={"text": "review", "label": "sentiment"},
    )
    labels = dm.learn_labels()
    assert labels == {"labels": ["neg", "pos"], "multi_label": False, "class_label": False}
    assert task.labels is None  # nothing written into the task
    with pytest.raises(TunelabError, match=r"not set up.*task.setup\(datamodule.tokenizer, datamodule.learn_labels"):
        dm.setup()
    task.setup(dm.tokenizer, labels)
    dm.setup()
    assert task.labels == ["neg", "pos"] and task.tokenizer is dm.tokenizer


def test_a_task_with_other_labels_tokenizes_without_the_cache(tiny_backbone, cache, mr_csv):
    """A task restored with other labels (a checkpoint evaluated on this data) must not read features that
    were tokenized with the data's own label ids."""

    def data():
        return TuneDataModule(
            loader=partial(files, train=str(mr_csv)),
            task=SequenceClassification(),
            tokenizer=tiny_backbone,
            columns={"text": "review", "label": "sentiment"},
        )

    first = ready(data())
    second = data()
    second.task.setup(second.tokenizer, {**second.learn_labels(), "labels": ["pos", "neg"]})
    second.setup()
    assert not getattr(second, "tokenized_from_cache", False)
    assert second.splits["train"]["labels"] == [1 - label for label in first.splits["train"]["labels"]]


def test_batches_pad_to_their_longest_row_not_max_length(tiny_backbone, cache):
    dm = mr(tiny_backbone, max_length=128, batch_size=32)
    ready(dm)
    widths = []
    for batch in dm.train_dataloader():
        widths.append(batch["input_ids"].shape[1])
        assert batch["input_ids"].shape[1] == int(batch["length"].max())
    assert max(widths) <= 128 and np.mean(widths) < 60  # MR sentences: ~30 tokens, not 128


def test_predictions_keep_input_order(tiny_backbone, cache):
    from tunelab.commands.predict import predict_rows
    from tunelab.model.module import TuneModule

    dm = mr(tiny_backbone)
    ready(dm)
    module = TuneModule(tiny_backbone, dm.task)
    rows = [
        {"text": "short"},
        {"text": "a much longer sentence with many more words in it than the others"},
        {"text": "mid length text here"},
    ]
    together = predict_rows(module, dm, rows)
    one_by_one = [predict_rows(module, dm, [r])[0] for r in rows]
    for a, b in zip(together, one_by_one):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_user_csv_with_own_column_names(tiny_backbone, cache, mr_csv):
    dm = TuneDataModule(
        loader=partial(files, train=str(mr_csv)),
        task=SequenceClassification(),
        tokenizer=tiny_backbone,
        columns={"text": "review", "label": "sentiment"},
    )
    ready(dm)
    assert dm.task.labels == ["neg", "pos"]
    assert sum(len(d) for d in dm.splits.values()) == 120


def test_missing_column_names_the_columns_there_are(tiny_backbone, cache, mr_csv):
    dm = TuneDataModule(
        loader=partial(files, train=str(mr_csv)), task=SequenceClassification(), tokenizer=tiny_backbone
    )
    with pytest.raises(TunelabError, match=r"has no column 'text'.*\['review', 'sentiment'\].*data.columns"):
        ready(dm)


def test_label_in_test_not_seen_in_train(tiny_backbone, cache, tmp_path):
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text("text,label\ngood,pos\nbad,neg\nfine,pos\nawful,neg\n")
    test.write_text("text,label\nok,neutral\n")
    dm = TuneDataModule(
        loader=partial(files, train=str(train), test=str(test)),
        task=SequenceClassification(),
        tokenizer=tiny_backbone,
        split_ratios=(0.5, 0.5, 0.0),
    )
    with pytest.raises(TunelabError, match=r"test split.*Unknown label 'neutral'"):
        ready(dm)


def test_empty_split_after_max_samples(tiny_backbone, cache):
    with pytest.raises(TunelabError, match="validation split of 'mr' is empty"):
        ready(mr(tiny_backbone, max_samples={"validation": 0}))


def test_unreadable_files(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    with pytest.raises(TunelabError, match="not UTF-8"):
        files(train=str(latin))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TunelabError, match="is empty"):
        files(train=str(empty))
    with pytest.raises(TunelabError, match="does not exist"):
        files(train=str(tmp_path / "nope.csv"))


def test_bad_split_ratios_and_batch_size():
    with pytest.raises(TunelabError, match="split_ratios"):
        TuneDataModule(loader=partial(builtin, "mr"), split_ratios=(0.5, 0.2, 0.2))
    with pytest.raises(TunelabError, match="batch_size must be a positive integer"):
        TuneDataModule(loader=partial(builtin, "mr"), batch_size=0)


def test_duplicate_ids_in_qa_are_refused(tiny_backbone, cache, tmp_path):
    from tunelab.tasks.question_answering import QuestionAnswering

    rows = [
        {
            "id": "q1",
            "question": "who wrote it?",
            "context": "Ann wrote it.",
            "answers": {"text": ["Ann"], "answer_start": [0]},
        },
        {
            "id": "q1",
            "question": "what did Ann do?",
            "context": "Ann wrote it.",
            "answers": {"text": ["wrote"], "answer_start": [4]},
        },
    ]
    path = tmp_path / "qa.jsonl"
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    dm = TuneDataModule(
        loader=partial(files, train=str(path)),
        task=QuestionAnswering(),
        tokenizer=tiny_backbone,
        columns={"id": "id", "question": "question", "context": "context", "answers": "answers"},
        split_ratios=(0.5, 0.5, 0.0),
        cache=False,
    )
    with pytest.raises(TunelabError, match=r"duplicate ids \['q1'\]"):
        ready(dm)


def test_predictions_keep_input_order_across_length_sorted_batches(tiny_backbone, cache):
    """Many rows, several batches, lengths shuffled: batches run longest-first, results come back in input order."""
    import torch

    from tunelab.commands.predict import predict_rows
    from tunelab.model.module import TuneModule

    dm = mr(tiny_backbone, eval_batch_size=4)
    ready(dm)
    module = TuneModule(tiny_backbone, dm.task).eval()
    words = "the film is a gorgeous witty seductive mess of ideas that never quite land".split()
    rows = [
        {"text": " ".join(words[: int(n)])} for n in np.random.default_rng(0).permutation(np.arange(1, len(words) + 1))
    ]
    real = module.task.postprocess  # each prediction also says how many tokens its row had: all lengths differ
    module.task.postprocess = lambda model, outputs, batch: [
        {**row, "tokens": int(n)} for row, n in zip(real(model, outputs, batch), batch["attention_mask"].sum(-1))
    ]
    together = predict_rows(module, dm, rows)
    assert list(dm.predict_dataloader().sampler) != list(range(len(rows)))  # really reordered (longest first)
    assert [p["tokens"] for p in together] == [len(dm.tokenizer(r["text"])["input_ids"]) for r in rows]
    with torch.inference_mode():  # each row alone, no batching or sorting at all
        alone = [
            torch.softmax(module.model(**dm.tokenizer(r["text"], return_tensors="pt")).logits, -1).max().item()
            for r in rows
        ]
    assert [p["score"] for p in together] == pytest.approx(alone, abs=1e-6)


def _remote_code_backbone(tiny_backbone, folder):
    """A local model folder whose architecture exists only as its own Python code (config.json's auto_map)."""
    import json
    import shutil

    shutil.copytree(tiny_backbone, folder)
    (folder / "configuration_my.py").write_text(
        "from transformers import BertConfig\n\nclass MyConfig(BertConfig):\n    model_type = 'my_arch'\n"
    )
    (folder / "modeling_my.py").write_text(
        "from transformers import BertForSequenceClassification\nfrom .configuration_my import MyConfig\n\n"
        "class MyForSequenceClassification(BertForSequenceClassification):\n    config_class = MyConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="my_arch",
        auto_map={
            "AutoConfig": "configuration_my.MyConfig",
            "AutoModelForSequenceClassification": "modeling_my.MyForSequenceClassification",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_trust_remote_code_reaches_the_tokenizer(tiny_backbone, tmp_path, capsys):
    """model.trust_remote_code=true lets a folder that ships its own code load, tokenizer included (it used
    to stay refused by the tokenizer with a message asking for the switch the user had set)."""
    from helpers.runs import quick, read_metrics, train_in_process

    remote = _remote_code_backbone(tiny_backbone, tmp_path / "remote-code")
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"a fine film {i},pos\na dull film {i},neg\n" for i in range(24)))
    run = tmp_path / "run"
    base = [*quick(str(remote), run), "data=files", f"data.loader.train={data}"]
    assert train_in_process(*base) != 0  # not trusted: refused
    assert "ships its own modelling code" in capsys.readouterr().err
    assert train_in_process(*base, "model.trust_remote_code=true") == 0
    assert read_metrics(run)["metrics"]["test/accuracy"] >= 0
    assert "trust_remote_code: true" in (run / "config.yaml").read_text().split("data:", 1)[1]  # the data module's
