"""Per head: what ``test_predictions.jsonl`` records of one test row, and the row's score.

Each head says how to read a ``predict_step`` row (the prediction), where the gold answer comes from
(the batch's labels for the label heads; the raw test split's row for the others, so the file shows the
data as written, not as tokenized) and how one row is scored. Scores are oriented so that higher is
better; ``correct`` (right or wrong per row, for McNemar) is given where a row can be plainly right:

- classification, multiple choice: accuracy; regression: minus the squared error (no ``correct``);
- tagging, ``scheme: bio``: the row's entity F1 (seqeval's entities; a row with no entity in gold or
  prediction scores 1: nothing to find, nothing wrongly found, as SQuAD scores an empty answer). Entity
  F1 is what a NER run is ranked by; word accuracy is dominated by ``O`` and would hide a missed entity.
  ``scheme: tags``: the row's word accuracy (the metric). ``correct``: every word's tag right;
- extractive QA: the question's SQuAD token F1 or exact match (whichever ``task.metric`` follows);
  ``correct``: exact match;
- seq2seq: the task's metric on the one row where it decomposes (exact match, ROUGE F1), sentence chrF
  for BLEU (corpus BLEU has no per-row share); ``correct``: exact match;
- causal LM: minus the row's token-mean loss (its log-perplexity; the file's token-weighted mean loss,
  exponentiated, is the split's test perplexity). Exact match of a free generation is almost always 0 and
  is not what the run is ranked by. The prediction recorded is the greedy generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Head:
    measure: str  # what the per-row score is (compare's sentence names it)
    prediction: Callable[[dict], Any]  # a predict_step row -> the file's "prediction"
    score: Callable[[Any, Any], tuple[float, bool | None]]  # (prediction, gold) -> (score, correct or None)
    gold_of_label: Callable | None = None  # gold from the batch's label tensor (label heads)
    gold_of_raw: Callable[[dict], Any] | None = None  # gold from the raw test row (the other heads)
    row_loss: bool = False  # causal LM: the score is the row's loss, from one more forward pass


def _equal(prediction, gold) -> tuple[float, bool]:
    return float(prediction == gold), prediction == gold


def _metric(task) -> str:
    return task.metric.split("/", 1)[-1]


def _tags(task, raw_features) -> Head:
    from seqeval.metrics.sequence_labeling import get_entities

    names = getattr(getattr(raw_features.get("tags"), "feature", None), "names", None)  # ClassLabel ints
    bio = task.scheme == "bio"

    def gold(row):
        return [names[t] if names and isinstance(t, int) else str(t) for t in row["tags"]]

    def score(prediction, gold):
        # words past max_length were not tagged: as O (bio), or wrong (tags)
        predicted = list(prediction) + ["O" if bio else None] * (len(gold) - len(prediction))
        correct = predicted == gold
        if not bio:
            return sum(p == g for p, g in zip(predicted, gold)) / max(1, len(gold)), correct
        found, truth = set(get_entities(predicted)), set(get_entities(gold))
        if not found and not truth:
            return 1.0, correct
        return 2 * len(found & truth) / (len(found) + len(truth)), correct

    return Head(
        "entity F1" if bio else "word accuracy",
        lambda row: [w["tag"] for w in row["words"]],
        score,
        gold_of_raw=gold,
    )


def _answers(task) -> Head:
    from tunelab.tasks.question_answering import exact_match, token_f1

    f1 = _metric(task) != "exact_match"

    def score(prediction, golds):
        right = exact_match(prediction, golds) == 1.0
        return (token_f1(prediction, golds) if f1 else float(right)), right

    return Head(
        "token F1" if f1 else "exact match",
        lambda row: row["answer"],
        score,
        gold_of_raw=lambda row: list((row.get("answers") or {}).get("text") or []),
    )


def _generations(task) -> Head:
    from tunelab.tasks import generation_scores as scores

    name = _metric(task)

    def score(prediction, reference):
        right = scores.exact_match([prediction], [reference]) == 100.0
        if name in ("rouge1", "rouge2", "rougeL"):
            return scores.score(name, [prediction], [reference]) / 100, right
        if name == "exact_match":
            return float(right), right
        import sacrebleu

        return sacrebleu.sentence_chrf(prediction, [reference]).score / 100, right

    measure = {"exact_match": "exact match", "rouge1": "ROUGE-1 F1", "rouge2": "ROUGE-2 F1", "rougeL": "ROUGE-L F1"}
    return Head(
        measure.get(name, "sentence chrF"),
        lambda row: row["generated"],
        score,
        gold_of_raw=lambda row: " ".join(str(row["target"]).split()),
    )


def head(task, raw_features: dict | None = None) -> Head | None:
    """The head of ``task``, or None for a task this file does not cover (a user's own head)."""
    from tunelab.tasks.causal_lm import CausalLM
    from tunelab.tasks.classification import SequenceClassification
    from tunelab.tasks.multiple_choice import MultipleChoice
    from tunelab.tasks.question_answering import QuestionAnswering
    from tunelab.tasks.regression import Regression
    from tunelab.tasks.seq2seq import Seq2Seq
    from tunelab.tasks.token_classification import TokenClassification

    if isinstance(task, SequenceClassification):
        if task.multi_label:
            return Head(
                "accuracy",
                lambda row: sorted(row["labels"]),
                _equal,
                gold_of_label=lambda label: sorted(task.labels[j] for j, v in enumerate(label.tolist()) if v >= 0.5),
            )
        return Head("accuracy", lambda row: row["label"], _equal, gold_of_label=lambda label: task.labels[int(label)])
    if isinstance(task, MultipleChoice):
        return Head("accuracy", lambda row: row["choice"], _equal, gold_of_label=lambda label: int(label))
    if isinstance(task, Regression):
        return Head(
            "minus squared error",
            lambda row: row["score"],
            lambda p, g: (-((float(p) - float(g)) ** 2), None),
            gold_of_label=lambda label: float(label),
        )
    if isinstance(task, TokenClassification):
        return _tags(task, raw_features or {})
    if isinstance(task, QuestionAnswering):
        return _answers(task)
    if isinstance(task, Seq2Seq):
        return _generations(task)
    if isinstance(task, CausalLM):
        return Head(
            "minus token-mean loss",
            lambda row: row["generated"],
            lambda p, g: (None, None),  # scored by the row's loss (row_loss), not by the texts
            gold_of_raw=lambda row: row["text"],
            row_loss=True,
        )
    return None


def row_losses(model, batch) -> list[tuple[float, int]]:
    """(token-mean loss, scored tokens) of each row of a causal-LM batch: the model's logits for the
    batch's own inputs, scored like the task's loss (next-token cross-entropy, prompt and padding unscored)."""
    import torch

    from tunelab.tasks.causal_lm import token_nll

    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    nll, _ = token_nll(logits, labels)
    scored = labels[:, 1:] != -100
    nll = nll.view(scored.shape) * scored
    sums, counts = nll.double().sum(1).tolist(), scored.sum(1).tolist()
    return [(s / max(1, n), int(n)) for s, n in zip(sums, counts)]
