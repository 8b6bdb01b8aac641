"""Extractive question answering (SQuAD v1, and v2-style questions without an answer).

Rows hold ``question``, ``context`` and ``answers`` (SQuAD's ``{"text": [...], "answer_start":
[...]}``; empty lists = no answer). A context longer than ``max_length`` is cut into overlapping
windows (``doc_stride`` tokens of overlap); each window is a training row whose target is the
answer's first and last token, or the [CLS] token when the answer is not inside it. Evaluation
and predict take each window's ``n_best`` start/end candidates, map them back to characters of
the context through the offset mapping, keep the best span over all windows of a question and
answer "" (no answer) when the [CLS] score beats it by more than ``null_threshold``.
Metrics: SQuAD exact match and token F1 (an empty gold set is matched only by "").
"""

from __future__ import annotations

import collections
import json
import re
import string

import torch
import torch.nn.functional as F

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task
from tunelab.tasks.object_metric import ObjectListMetric
from tunelab.tasks.padding import PadCollator


# ---- SQuAD scoring (the official v1.1 / v2.0 normalisation)
def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: list[str]) -> float:
    if not golds:
        return float(prediction == "")
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds)


def token_f1(prediction: str, golds: list[str]) -> float:
    if not golds:
        return float(prediction == "")

    def f1(gold: str) -> float:
        p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
        common = sum((collections.Counter(p) & collections.Counter(g)).values())
        if not p or not g:
            return float(p == g)
        if common == 0:
            return 0.0
        precision, recall = common / len(p), common / len(g)
        return 2 * precision * recall / (precision + recall)

    return max(f1(g) for g in golds)


MAX_N_BEST = 5  # candidates reported per question by predict


def merge_windows(best: dict | None, window: dict, null_threshold: float = 0.0) -> dict:
    """Combine two windows' answers of one question: best span anywhere, lowest [CLS] score."""
    if best is not None:
        span = (
            best["span"]
            if (best["span"] or {}).get("score", -1e9) >= (window["span"] or {}).get("score", -1e9)
            else window["span"]
        )
        window = {
            "span": span,
            "null_score": min(best["null_score"], window["null_score"]),
            "n_best": sorted(best["n_best"] + window["n_best"], key=lambda c: -c["score"])[:MAX_N_BEST],
        }
    span = window["span"]
    answer = span["text"] if span and span["score"] > window["null_score"] + null_threshold else ""
    return {**window, "answer": answer}


class SquadMetric(ObjectListMetric):
    """Exact match or token F1 over questions (windows of one question are merged first)."""

    def __init__(self, score: str = "f1", null_threshold: float = 0.0):
        super().__init__()
        self.score, self.null_threshold = score, null_threshold

    def update(self, windows: list[tuple[int, dict, list[str]]]) -> None:
        self.items.extend(windows)

    def compute(self) -> torch.Tensor:
        merged, golds = {}, {}
        for idx, window, gold in self.items:
            merged[idx] = merge_windows(merged.get(idx), window, self.null_threshold)
            golds[idx] = gold
        scorer = exact_match if self.score == "exact_match" else token_f1
        values = [scorer(merged[i]["answer"], golds[i]) for i in merged]
        return torch.tensor(100.0 * sum(values) / max(1, len(values)))


class QuestionAnswering(Task):
    name = "question_answering"
    pipeline_task = (
        None  # transformers 5 removed the question-answering pipeline; AutoModelForQuestionAnswering loads the export
    )
    required_columns = ("question", "context")
    optional_columns = ("answers", "id")
    non_model_keys = ("labels", "idx", "length", "start_positions", "end_positions", "offsets", "context", "golds")

    def __init__(
        self,
        doc_stride: int = 64,
        n_best: int = 20,
        max_answer_tokens: int = 30,
        null_threshold: float = 0.0,
        metric: str = "val/f1",
        metric_mode: str = "max",
    ):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForQuestionAnswering

        self.auto_class = AutoModelForQuestionAnswering
        self.doc_stride, self.n_best = doc_stride, n_best
        self.max_answer_tokens, self.null_threshold = max_answer_tokens, null_threshold

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "doc_stride": self.doc_stride}

    # ---- features
    @staticmethod
    def _gold(answers, context: str, row) -> tuple[list[str], int, int]:
        """Gold texts and the first answer's character span (-1, -1: no answer). Checks every answer."""
        texts = list((answers or {}).get("text") or [])
        starts = list((answers or {}).get("answer_start") or [])
        if len(texts) != len(starts):
            raise TunelabError(f"Row {row}: answers has {len(texts)} texts but {len(starts)} answer_start values.")
        for text, start in zip(texts, starts):
            if not text or context[start : start + len(text)] != text:
                found = context.find(text) if text else -1
                hint = f" (it occurs at {found}; fix answer_start)" if found >= 0 else ""
                raise TunelabError(
                    f"Row {row}: the answer {text!r} is not in its context at answer_start={start}"
                    f"{hint}. Every answer must be a span of the context."
                )
        return texts, (starts[0] if texts else -1), (starts[0] + len(texts[0]) if texts else -1)

    def preprocess(self, examples, tokenizer, max_length):
        questions = examples.get("question") or examples["text"]  # predict rows: {"text": question, "context": ...}
        contexts = examples["context"]
        for i, (q, c) in enumerate(zip(questions, contexts)):
            if not isinstance(q, str) or not q.strip() or not isinstance(c, str) or not c.strip():
                raise TunelabError(f"Row {examples['idx'][i] if 'idx' in examples else i}: empty question or context.")
        questions = [q.lstrip() for q in questions]
        longest = max(len(ids) for ids in tokenizer(questions)["input_ids"])
        room = max_length - longest - 1  # context tokens per window (question, [CLS], 2 x [SEP] take the rest)
        if room < 8:
            raise TunelabError(
                f"A question of {longest} tokens leaves {room} context tokens per window at "
                f"data.max_length={max_length}. Raise data.max_length or shorten the question."
            )
        enc = tokenizer(
            questions,
            contexts,
            truncation="only_second",
            max_length=max_length,
            stride=min(self.doc_stride, room // 2),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        answers = examples.get("answers")
        features = {
            k: []
            for k in (
                "input_ids",
                "attention_mask",
                "token_type_ids",
                "offsets",
                "context",
                "golds",
                "idx",
                "length",
                "start_positions",
                "end_positions",
            )
        }
        for w, row in enumerate(enc["overflow_to_sample_mapping"]):
            idx = examples["idx"][row] if "idx" in examples else row
            seq = enc.sequence_ids(w)
            offsets = [list(o) if s == 1 else [-1, -1] for o, s in zip(enc["offset_mapping"][w], seq)]
            golds, a, b = self._gold(answers[row], contexts[row], idx) if answers is not None else ([], -1, -1)
            start = end = 0  # [CLS]: no answer in this window
            inside = [t for t, (x, y) in enumerate(offsets) if x >= 0]
            if a >= 0 and offsets[inside[0]][0] <= a and offsets[inside[-1]][1] >= b:
                start = next(t for t in inside if offsets[t][1] > a)
                end = next(t for t in reversed(inside) if offsets[t][0] < b)
            for key, value in (
                ("input_ids", enc["input_ids"][w]),
                ("attention_mask", enc["attention_mask"][w]),
                ("token_type_ids", enc["token_type_ids"][w] if "token_type_ids" in enc else [0] * len(seq)),
                ("offsets", offsets),
                ("context", contexts[row]),
                ("golds", json.dumps(golds)),
                ("idx", idx),
                ("length", len(seq)),
                ("start_positions", start),
                ("end_positions", end),
            ):
                features[key].append(value)
        return features

    def collate(self, tokenizer):
        return PadCollator(tokenizer, pad_values={"offsets": [-1, -1]}, passthrough=("offsets", "context", "golds"))

    # ---- objective and metrics
    @staticmethod
    def _unpadded(logits: torch.Tensor, batch) -> torch.Tensor:
        """Padding positions are no candidates: without this, a window's loss would depend on how long the
        other windows of its batch are (and so on the batch size and the number of processes)."""
        return logits.float().masked_fill(batch["attention_mask"] == 0, torch.finfo(torch.float32).min)

    def loss(self, outputs, batch):
        return (
            F.cross_entropy(self._unpadded(outputs.start_logits, batch), batch["start_positions"])
            + F.cross_entropy(self._unpadded(outputs.end_logits, batch), batch["end_positions"])
        ) / 2

    def metrics(self):
        from torchmetrics import MetricCollection

        return MetricCollection(
            {s: SquadMetric(s, self.null_threshold) for s in ("exact_match", "f1")}, compute_groups=False
        )

    def windows(self, outputs, batch) -> list[dict]:
        """Per window: the n-best spans (score = start + end logit, text from the context) and the [CLS] score."""
        found = []
        starts, ends = outputs.start_logits.float(), outputs.end_logits.float()
        k = min(self.n_best, starts.shape[1])
        for w in range(len(starts)):
            offsets, context = batch["offsets"][w], batch["context"][w]
            candidates = []
            for s in starts[w].topk(k).indices.tolist():
                for e in ends[w].topk(k).indices.tolist():
                    if s >= len(offsets) or e >= len(offsets) or offsets[s][0] < 0 or offsets[e][0] < 0:
                        continue
                    if e < s or e - s + 1 > self.max_answer_tokens:
                        continue
                    a, b = offsets[s][0], offsets[e][1]
                    candidates.append(
                        {"text": context[a:b], "start": a, "end": b, "score": float(starts[w, s] + ends[w, e])}
                    )
            candidates.sort(key=lambda c: -c["score"])
            found.append(
                {
                    "span": candidates[0] if candidates else None,
                    "n_best": candidates[:MAX_N_BEST],
                    "null_score": float(starts[w, 0] + ends[w, 0]),
                }
            )
        return found

    def update_metrics(self, metrics, model, outputs, batch):
        windows = self.windows(outputs, batch)
        metrics.update([(int(i), w, json.loads(g)) for i, w, g in zip(batch["idx"], windows, batch["golds"])])

    def postprocess(self, model, outputs, batch):
        return [merge_windows(None, w, self.null_threshold) for w in self.windows(outputs, batch)]

    def merge_prediction(self, earlier: dict, later: dict) -> dict:
        """Two windows of one question (predict): keep the best span, the lowest no-answer score."""
        return merge_windows(earlier, later, self.null_threshold)
