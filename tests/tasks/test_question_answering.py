"""Extractive QA head: windows and offsets, n-best post-processing, SQuAD scores, the derived Lee set."""

from __future__ import annotations

import pytest
import torch

from helpers.runs import quick, read_metrics, train_in_process
from helpers.tasks import load_tokenizer_stub, loss_falls
from tunelab.data.corpora import cloze_questions, lee_qa
from tunelab.errors import TunelabError
from tunelab.tasks import QuestionAnswering
from tunelab.tasks.question_answering import SquadMetric, exact_match, token_f1

CONTEXT = "The fire started near Goulburn on Monday. About 500 residents left their homes for Mittagong."
ROWS = [
    {
        "question": "Where did residents go?",
        "context": CONTEXT,
        "answers": {"text": ["Mittagong"], "answer_start": [CONTEXT.index("Mittagong")]},
    },
    {
        "question": "How many residents left?",
        "context": CONTEXT,
        "answers": {"text": ["500"], "answer_start": [CONTEXT.index("500")]},
    },
    {"question": "Who won the cup?", "context": CONTEXT, "answers": {"text": [], "answer_start": []}},
]


def _features(rows, max_length=64, stride=64):
    task = QuestionAnswering(doc_stride=stride)
    return task, task.preprocess({k: [r[k] for r in rows] for k in rows[0]}, load_tokenizer_stub(), max_length)


def test_answer_tokens_map_back_to_the_answer_text():
    task, f = _features(ROWS)
    for w, row in enumerate(ROWS):
        s, e = f["start_positions"][w], f["end_positions"][w]
        if row["answers"]["text"]:
            assert CONTEXT[f["offsets"][w][s][0] : f["offsets"][w][e][1]] == row["answers"]["text"][0]
        else:
            assert s == e == 0  # [CLS]
    assert f["offsets"][0][0] == [-1, -1]  # question and special tokens have no context offsets


def test_long_context_is_split_into_overlapping_windows():
    long = " ".join(f"Sentence {i} mentions town{i}." for i in range(30)) + " The prize went to Mittagong."
    row = {
        "question": "Who got the prize?",
        "context": long,
        "answers": {"text": ["Mittagong"], "answer_start": [long.index("Mittagong")]},
    }
    _, f = _features([row], max_length=48, stride=16)
    assert len(f["input_ids"]) > 3 and set(f["idx"]) == {0}
    hits = [w for w in range(len(f["input_ids"])) if f["start_positions"][w] != 0]
    assert len(hits) >= 1 and f["start_positions"][0] == 0  # only windows that hold the answer point at it
    spans = [
        (f["offsets"][w][t][0]) for w in range(2) for t in range(len(f["offsets"][w])) if f["offsets"][w][t][0] >= 0
    ]
    assert len(spans) > len(set(spans))  # consecutive windows share context tokens (the stride)


def test_answer_not_in_context_is_named():
    row = {**ROWS[0], "answers": {"text": ["Sydney"], "answer_start": [3]}}
    with pytest.raises(TunelabError, match=r"Row 0: the answer 'Sydney' is not in its context at answer_start=3"):
        _features([row])
    moved = {**ROWS[0], "answers": {"text": ["Mittagong"], "answer_start": [3]}}
    with pytest.raises(TunelabError, match=r"it occurs at \d+; fix answer_start"):
        _features([moved])


def test_squad_scores_match_hand_computed():
    assert exact_match("the Blue Mountains.", ["Blue Mountains"]) == 1.0
    # prediction "blue mountains west" vs gold "blue mountains": p = 2/3, r = 1 -> f1 = 0.8
    assert token_f1("Blue Mountains west", ["Blue Mountains"]) == pytest.approx(0.8)
    assert token_f1("", []) == 1.0 and exact_match("Sydney", []) == 0.0
    assert token_f1("Sydney", ["Hill Top", "Sydney"]) == 1.0  # best over gold answers


def test_squad_metric_survives_lightnings_device_moves_and_resets():
    # Lightning calls metric.to(device) on every log call; the windows are Python objects
    metric = SquadMetric("exact_match")
    metric.update([(0, {"span": {"text": "Sydney", "score": 2.0}, "null_score": 0.0, "n_best": []}, ["Sydney"])])
    metric.to("cpu")
    assert metric.compute().item() == 100.0
    metric.reset()
    metric.update([(1, {"span": None, "null_score": 0.0, "n_best": []}, ["Perth"])])
    assert metric.compute().item() == 0.0  # only the new question counts after a reset


def test_n_best_postprocessing_merges_windows_and_predicts_no_answer():
    task, f = _features(ROWS)
    n = max(len(x) for x in f["input_ids"])
    batch = task.collate(load_tokenizer_stub())([{k: f[k][i] for k in f} for i in range(3)])
    start, end = torch.zeros(3, n), torch.zeros(3, n)
    for w in range(2):  # windows 0 and 1: logits point at the gold span
        start[w, f["start_positions"][w]] = end[w, f["end_positions"][w]] = 5.0
    start[2, 0] = end[2, 0] = 5.0  # window 2: [CLS] wins -> no answer
    outputs = type("Out", (), {"start_logits": start, "end_logits": end})()
    answers = [r["answer"] for r in task.postprocess(None, outputs, batch)]
    assert answers == ["Mittagong", "500", ""]
    metrics = task.metrics()
    task.update_metrics(metrics, None, outputs, batch)
    assert {k: v.item() for k, v in metrics.compute().items()} == {"exact_match": 100.0, "f1": 100.0}


def test_loss_falls_on_a_fixed_batch(tiny_backbone):
    losses, _, _ = loss_falls(tiny_backbone, QuestionAnswering(), ROWS, steps=60)
    assert losses[-1] < 0.4 * losses[0]


def test_the_derived_lee_set_is_deterministic_and_answers_are_spans():
    article = "Fires burn near Sydney today. Crews from Mittagong and Goulburn fought 12 blazes. It rained."
    rows = cloze_questions(article)
    assert [r["question"] for r in rows] == [
        "Fires burn near what today?",
        "Crews from Mittagong and what fought 12 blazes?",
    ]
    data = lee_qa()
    assert data == lee_qa() and len(data["train"]["question"]) == 814 and len(data["test"]["question"]) == 117
    for context, answers in zip(data["train"]["context"], data["train"]["answers"]):
        for text, start in zip(answers["text"], answers["answer_start"]):
            assert context[start : start + len(text)] == text
    assert sum(not a["text"] for a in data["test"]["answers"]) == 29  # every 4th: no answer


def test_qa_run_predicts_and_exports_a_pipeline(tiny_backbone, tmp_path, capsys):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from tunelab.commands.export import export_run
    from tunelab.commands.predict import predict_rows
    from tunelab.run.record import load_run

    run = tmp_path / "run"
    code = train_in_process(*quick(tiny_backbone, run, "task=question_answering", "data=lee_qa", "data.max_length=128"))
    assert code == 0, capsys.readouterr().err[-2000:]
    assert {"test/exact_match", "test/f1"} <= set(read_metrics(run)["metrics"])
    _, module, datamodule, _ = load_run(str(run))
    long = CONTEXT + " " + " ".join(f"Filler sentence number {i}." for i in range(20))
    [answer] = predict_rows(module, datamodule, [{"text": "Where did residents go?", "context": long}])
    assert answer["answer"] == "" or answer["answer"] in long
    assert all(long[c["start"] : c["end"]] == c["text"] for c in answer["n_best"])
    folder = export_run(str(run), str(tmp_path / "export"))  # transformers 5 has no question-answering pipeline
    exported = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    inputs = AutoTokenizer.from_pretrained(folder)("Where did residents go?", CONTEXT, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(exported(**inputs).start_logits, module.model(**inputs).start_logits, atol=1e-5)
