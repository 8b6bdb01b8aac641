"""Multiple choice (SWAG-style): pick the right one of a row's choices.

Rows hold ``text`` (the context, e.g. SWAG's ``sent1``), ``choices`` (a list of strings; a data
config gathers columns into it: ``choices: [ending0, ending1, ending2, ending3]``), optionally
``question`` (put before every choice: SWAG's ``sent2``, the start of the ending) and ``label``
(the index of the right choice). Each choice is encoded as the pair (text, question + choice); the
model (``AutoModelForMultipleChoice``) scores every pair and a softmax over a row's choices gives
its probabilities. Rows may have different numbers of choices: a batch pads to its largest row and
the padding choices are masked out of the loss, the metric and the predictions.
Metric: accuracy. Predict: the chosen index, its text and every choice's probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task


class ChoiceCollator:
    """Pads rows to (batch, most choices, longest pair). A padding choice is one [PAD] token that
    attends to itself (a fully masked row would give NaNs), marked 0 in ``choice_mask``."""

    KEYS = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, tokenizer):
        self.pad = tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        n_choices = max(len(r["input_ids"]) for r in rows)
        width = max(len(ids) for r in rows for ids in r["input_ids"])
        batch = {}
        for key in self.KEYS:
            if key not in rows[0]:
                continue
            pad = self.pad if key == "input_ids" else 0
            filler = [1 if key == "attention_mask" else pad] + [pad] * (width - 1)
            batch[key] = torch.tensor(
                [
                    [list(seq) + [pad] * (width - len(seq)) for seq in r[key]] + [filler] * (n_choices - len(r[key]))
                    for r in rows
                ]
            )
        batch["choice_mask"] = torch.tensor(
            [[1] * len(r["input_ids"]) + [0] * (n_choices - len(r["input_ids"])) for r in rows], dtype=torch.bool
        )
        for key in ("labels", "idx", "length"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows])
        batch["choices"] = [r["choices"] for r in rows]
        return batch


class MultipleChoice(Task):
    name = "multiple_choice"
    pipeline_task = None  # transformers has no multiple-choice pipeline; AutoModelForMultipleChoice loads the export
    required_columns = ("text", "choices", "label")
    optional_columns = ("question",)
    non_model_keys = ("labels", "idx", "length", "choice_mask", "choices")

    def __init__(self, metric: str = "val/accuracy", metric_mode: str = "max"):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForMultipleChoice

        self.auto_class = AutoModelForMultipleChoice

    # ---- features
    @staticmethod
    def _label(value, n_choices: int, row) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TunelabError(f"Row {row}: label {value!r} is not a choice index (an integer 0..{n_choices - 1}).")
        if not 0 <= value < n_choices:
            raise TunelabError(
                f"Row {row}: label {value} is not an index of its {n_choices} choices "
                f"(0..{n_choices - 1}). Fix the data (labels count from 0)."
            )
        return value

    def preprocess(self, examples, tokenizer, max_length):
        texts, all_choices = examples["text"], examples.get("choices")
        questions, labels = examples.get("question"), examples.get("label")
        features = {"input_ids": [], "attention_mask": [], "choices": [], "length": []}
        if labels is not None:
            features["labels"] = []
        for i, text in enumerate(texts):
            row = examples["idx"][i] if "idx" in examples else i
            choices = all_choices[i] if all_choices is not None else None
            if not isinstance(text, str):
                raise TunelabError(f"Row {row}: column 'text' holds {text!r}, not text. Fill or drop that row.")
            if not isinstance(choices, (list, tuple)) or len(choices) < 2:
                raise TunelabError(f"Row {row}: 'choices' must be a list of at least 2 texts, got {choices!r}.")
            if any(not isinstance(c, str) or not c.strip() for c in choices):
                raise TunelabError(f"Row {row}: an empty choice in {list(choices)!r}. Every choice needs text.")
            question = questions[i] if questions is not None else None
            seconds = [
                f"{question} {c}".strip() if isinstance(question, str) and question.strip() else c for c in choices
            ]
            enc = tokenizer([text] * len(choices), seconds, truncation=True, max_length=max_length)
            for key in enc:
                features.setdefault(key, []).append(enc[key])
            features["choices"].append(list(choices))
            features["length"].append(sum(len(ids) for ids in enc["input_ids"]))
            if labels is not None:
                features["labels"].append(self._label(labels[i], len(choices), row))
        return features

    def collate(self, tokenizer):
        return ChoiceCollator(tokenizer)

    # ---- objective and metrics
    @staticmethod
    def scores(outputs, batch) -> torch.Tensor:
        """Logits of real choices; padding choices get -inf."""
        return outputs.logits.float().masked_fill(~batch["choice_mask"], float("-inf"))

    def loss(self, outputs, batch):
        return F.cross_entropy(self.scores(outputs, batch), batch["labels"])

    def metrics(self):
        from torchmetrics import MeanMetric, MetricCollection

        # accuracy = the mean of per-row hits; rows may have different numbers of choices, so a
        # fixed-num_classes MulticlassAccuracy does not fit
        return MetricCollection({"accuracy": MeanMetric()})

    def update_metrics(self, metrics, model, outputs, batch):
        metrics.update((self.scores(outputs, batch).argmax(-1) == batch["labels"]).float())

    def postprocess(self, model, outputs, batch):
        probs = torch.softmax(self.scores(outputs, batch), -1)
        results = []
        for row, choices in enumerate(batch["choices"]):
            p = probs[row, : len(choices)]
            best = int(p.argmax())
            results.append({"choice": best, "text": choices[best], "scores": [round(float(x), 6) for x in p]})
        return results
