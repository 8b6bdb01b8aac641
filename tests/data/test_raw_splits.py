"""Own files for every task: each task's columns set without '+', CoNLL files read directly, column
errors that print the exact override (issue 17, items 1 and 2)."""

from __future__ import annotations

import json

import lightning  # noqa: F401  (before any capsys test: Lightning's log handler keeps the stderr it finds)
import pytest

from helpers.runs import quick, read_metrics, train_in_process

WORDS = [
    ("the", "DT"),
    ("cat", "NN"),
    ("sat", "VBD"),
    ("on", "IN"),
    ("a", "DT"),
    ("mat", "NN"),
    ("dogs", "NNS"),
    ("run", "VBP"),
    ("fast", "RB"),
]


def _sentences(n: int = 40):
    return [[WORDS[(i + j) % len(WORDS)] for j in range(4 + i % 3)] for i in range(n)]


def write_conll(path, sep=" ", docstart=True, extra_column=True):
    lines = ["-DOCSTART- -X- O", ""] if docstart else []
    for sent in _sentences():
        for word, tag in sent:  # word, tag, chunk: the tag is column 1, not the last
            lines.append(sep.join([word, tag, "I-NP"] if extra_column else [word, tag]))
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(capsys, *overrides):
    rc = train_in_process(*overrides)
    return rc, capsys.readouterr()


def test_conll_tagging_file_trains_with_only_loader_overrides(tiny_backbone, tmp_path, outputs):
    train = write_conll(tmp_path / "pos.conll")
    run = tmp_path / "run"
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "task=tagging",
                "data=files",
                f"data.loader.train={train}",
                "data.loader.tag_column=1",
            )
        )
        == 0
    )
    metrics = read_metrics(run)
    assert "test/accuracy" in metrics["metrics"]
    assert metrics["data"]["sizes"] == {"train": 32, "validation": 4, "test": 4}  # 40 sentences, -DOCSTART- skipped


def test_conll_reader_formats(tmp_path):
    from tunelab.data.sources import files

    tab = files(str(write_conll(tmp_path / "a.iob", sep="\t", extra_column=False)))["train"]
    assert tab[0]["tokens"] == ["the", "cat", "sat", "on"] and tab[0]["tags"] == ["DT", "NN", "VBD", "IN"]
    chosen = files(str(write_conll(tmp_path / "b.conll")), tag_column=1)["train"]
    assert chosen[0]["tags"] == ["DT", "NN", "VBD", "IN"]
    last = files(str(write_conll(tmp_path / "c.conll")))["train"]  # default: the last column
    assert set(last[0]["tags"]) == {"I-NP"}
    conllu = tmp_path / "d.conllu"
    conllu.write_text("# sent_id = 1\n1-2\tdel\t_\t_\n1\tde\tde\tADP\t_\n2\tel\tel\tDET\t_\n3\tgato\tgato\tNOUN\t_\n\n")
    assert files(str(conllu))["train"][0] == {"tokens": ["de", "el", "gato"], "tags": ["ADP", "DET", "NOUN"]}


def test_conll_missing_tag_column_names_line_and_fix(tmp_path):
    from tunelab.data.sources import files
    from tunelab.errors import TunelabError

    path = write_conll(tmp_path / "pos.conll", extra_column=False)
    with pytest.raises(TunelabError, match=r"pos.conll:3: 2 column\(s\).*no tag column 5.*data.loader.tag_column="):
        files(str(path), tag_column=5)


def test_tagging_jsonl_with_own_column_names(tiny_backbone, tmp_path, outputs):
    path = tmp_path / "pos.jsonl"
    path.write_text(
        "".join(json.dumps({"words": [w for w, _ in s], "pos": [t for _, t in s]}) + "\n" for s in _sentences())
    )
    run = tmp_path / "run"
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "task=tagging",
                "data=files",
                f"data.loader.train={path}",
                "data.columns.tokens=words",
                "data.columns.tags=pos",
            )
        )
        == 0
    )
    assert "test/accuracy" in read_metrics(run)["metrics"]


def test_seq2seq_jsonl_with_own_column_names(tiny_backbone, tmp_path, outputs):
    path = tmp_path / "plurals.jsonl"
    path.write_text(
        "".join(
            json.dumps({"singular": w, "plural": w + "s"}) + "\n"
            for w in ["cat", "dog", "tree", "car", "book", "pen", "cup", "hat"] * 4
        )
    )
    run = tmp_path / "run"
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "task=seq2seq",
                "data=files",
                f"data.loader.train={path}",
                "data.columns.text=singular",
                "data.columns.target=plural",
                "task.generation.max_new_tokens=4",
            )
        )
        == 0
    )
    assert "test/exact_match" in read_metrics(run)["metrics"]


def test_missing_task_column_prints_the_exact_override(tiny_backbone, tmp_path, outputs, capsys):
    path = tmp_path / "pos.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "words": [w for w, _ in s], "pos": [t for _, t in s]}) + "\n"
            for i, s in enumerate(_sentences())
        )
    )
    rc, out = run_cli(
        capsys, *quick(tiny_backbone, tmp_path / "run", "task=tagging", "data=files", f"data.loader.train={path}")
    )
    assert rc != 0 and "Traceback" not in out.err
    assert "task=tagging reads its 'tokens'" in out.err and "data.columns.tokens=words" in out.err
    assert "token_classification" not in out.err


def test_classification_column_on_tagging_names_the_fix(tiny_backbone, tmp_path, outputs, capsys):
    train = write_conll(tmp_path / "pos.conll")
    rc, out = run_cli(
        capsys,
        *quick(
            tiny_backbone,
            tmp_path / "run",
            "task=tagging",
            "data=files",
            f"data.loader.train={train}",
            "data.columns.text=review",
        ),
    )
    assert rc != 0
    assert "data.columns.text=review: task=tagging has no 'text' column" in out.err
    assert "data.columns.text=null" in out.err


def test_classification_defaults_unchanged(tiny_backbone, tmp_path, outputs, mr_csv, capsys):
    rc, out = run_cli(capsys, *quick(tiny_backbone, tmp_path / "run", "data=files", f"data.loader.train={mr_csv}"))
    assert rc != 0 and "has no column 'text'" in out.err and "data.columns.text=review" in out.err


# ---- the default columns come from the task: data configs name only what they rename (issue 16, item 5)
def _task_classes():
    import tunelab.tasks

    return [getattr(tunelab.tasks, name) for name in tunelab.tasks.__all__ if name != "Task"]


def test_the_shared_columns_are_every_tasks_canonical_columns():
    from omegaconf import OmegaConf

    from helpers.runs import ROOT

    shared = OmegaConf.load(ROOT / "conf" / "data" / "common" / "datamodule.yaml").columns
    canonical = {c for cls in _task_classes() for c in (*cls.required_columns, *cls.optional_columns)}
    assert set(shared) == canonical  # each one settable without '+', whatever the task
    assert all(v is None for v in shared.values())  # null: the task's default (a column of that name)


def test_no_data_config_repeats_a_default_column():
    from omegaconf import OmegaConf

    from helpers.runs import ROOT

    for path in sorted((ROOT / "conf" / "data").glob("*.yaml")):
        own = OmegaConf.load(path).get("columns") or {}
        repeated = {c: s for c, s in own.items() if s is None or s == c}
        assert not repeated, f"{path.name} sets {repeated}, the defaults already"


@pytest.mark.parametrize(
    "task,override,canon,source,columns",
    [
        ("tagging", "data.columns.tokens=words", "tokens", "words", ["words", "tags"]),
        ("seq2seq", "data.columns.target=lemma", "target", "lemma", ["text", "lemma"]),
        ("question_answering", "data.columns.context=passage", "context", "passage", ["question", "passage", "id"]),
    ],
)
def test_one_override_renames_one_column_of_any_task(task, override, canon, source, columns):
    from hydra.utils import instantiate

    from helpers.tasks import compose_config
    from tunelab.data.raw_splits import resolve

    cfg = compose_config(f"task={task}", "data=files", "data.loader.train=x.jsonl", override)
    mapping = resolve(dict(cfg.data.columns), instantiate(cfg.task), columns)
    assert mapping[canon] == source
    assert all(mapping[c] == c for c in mapping if c != canon)  # the others: the task's defaults
    assert "text" not in mapping or task == "seq2seq"  # classification's columns do not leak in


def test_builtin_data_configs_resolve_to_their_corpora_columns():
    from hydra.utils import instantiate

    from helpers.tasks import compose_config
    from tunelab.data.raw_splits import resolve

    for data, task, columns in [
        ("oanc_pos", "tagging", ["tokens", "tags"]),
        ("lee_qa", "question_answering", ["question", "context", "answers"]),
        ("lee_summaries", "seq2seq", ["text", "target"]),
        ("conll2003", "token_classification", ["id", "tokens", "pos_tags", "ner_tags"]),
        ("glue_mrpc", "classification", ["sentence1", "sentence2", "label", "idx"]),
    ]:
        cfg = compose_config(f"data={data}", f"task={task}")
        mapping = resolve(dict(cfg.data.columns), instantiate(cfg.task), columns)
        assert set(mapping.values()) <= set(columns), (data, mapping)
        if data == "conll2003":
            assert mapping == {"tokens": "tokens", "tags": "ner_tags"}
        if data == "glue_mrpc":
            assert mapping == {"text": "sentence1", "label": "label", "text_pair": "sentence2"}
