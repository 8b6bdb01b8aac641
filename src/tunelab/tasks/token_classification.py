"""Token classification: BIO/IOB2 entity tagging (NER) and plain tagging (POS).

Rows hold ``tokens`` (a list of words) and ``tags`` (one tag per word). At predict time a row may
instead hold ``text``: a string (split on whitespace) or a list of words. Words are split into
sub-words; ``label_all_subwords: false`` labels the first sub-word of each word and ignores the
rest (-100), ``true`` labels every sub-word (a ``B-X`` word's continuation pieces get ``I-X``).
Metrics and predictions are per word (the first sub-word's prediction): ``scheme: bio`` reports
seqeval's entity-level precision/recall/F1 plus token accuracy, ``scheme: tags`` token accuracy.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task
from tunelab.tasks.padding import PadCollator

SCHEMES = ("bio", "tags")
_BIO = re.compile(r"^(O|[BI]-.+)$")


def words_and_starts(value) -> tuple[list[str], list[int]]:
    """Words and their character offsets: in the string itself, or in ``" ".join(words)``."""
    if isinstance(value, str):
        found = [(m.group(), m.start()) for m in re.finditer(r"\S+", value)]
        return [w for w, _ in found], [s for _, s in found]
    words = [str(w) for w in value]
    starts, at = [], 0
    for word in words:
        starts.append(at)
        at += len(word) + 1
    return words, starts


class WordTagMetric(Metric):
    """One score over word-level tag sequences: ``accuracy`` (per word) or seqeval's entity-level
    ``precision`` / ``recall`` / ``f1``. Tags accumulate as flat tensors; ``first`` marks each
    sentence start so the sequences can be cut apart again (also after a distributed gather)."""

    full_state_update = False

    def __init__(self, labels: list[str], score: str = "accuracy"):
        super().__init__()
        self.labels, self.score = list(labels), score
        for name in ("preds", "target", "first"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor, first: torch.Tensor) -> None:
        self.preds.append(preds.flatten().long())
        self.target.append(target.flatten().long())
        self.first.append(first.flatten().long())

    def _sequences(self, ids: torch.Tensor, first: torch.Tensor) -> list[list[str]]:
        out = []
        for i, f in zip(ids.tolist(), first.tolist()):
            if f or not out:
                out.append([])
            out[-1].append(self.labels[i])
        return out

    def compute(self) -> torch.Tensor:
        from torchmetrics.utilities import dim_zero_cat

        if isinstance(self.target, list) and not self.target:  # nothing seen (after a sync: one tensor)
            return torch.tensor(0.0)
        preds, target, first = (dim_zero_cat(x) for x in (self.preds, self.target, self.first))
        if not target.numel():
            return torch.tensor(0.0)
        if self.score == "accuracy":
            return (preds == target).float().mean()
        import seqeval.metrics as seqeval

        scorer = getattr(seqeval, f"{self.score}_score")
        return torch.tensor(
            float(scorer(self._sequences(target, first), self._sequences(preds, first), zero_division=0))
        )


class TokenClassification(Task):
    name = "token_classification"
    pipeline_task = "token-classification"
    required_columns = ("tokens", "tags")
    non_model_keys = ("labels", "idx", "length", "word_ids", "words", "starts")

    def __init__(
        self,
        scheme: str = "bio",
        labels: list | None = None,
        label_all_subwords: bool = False,
        metric: str = "val/f1",
        metric_mode: str = "max",
    ):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForTokenClassification

        if scheme not in SCHEMES:
            raise TunelabError(f"task.scheme must be one of {list(SCHEMES)}, got '{scheme}'.")
        self.auto_class = AutoModelForTokenClassification
        self.scheme = scheme
        self.label_all_subwords = label_all_subwords
        self.labels = None
        if labels:
            self.labels = self._complete([str(t) for t in labels])
        self._configured_labels = self.labels
        self._tag_names = None

    # ---- labels
    def _check_tag(self, tag, where: str) -> None:
        if self.scheme == "bio" and not (isinstance(tag, str) and _BIO.match(tag)):
            raise TunelabError(
                f"{where}: tag {tag!r} is not a BIO tag (O, B-TYPE or I-TYPE). Fix the data, or use "
                "task.scheme=tags for plain tagging."
            )

    def _complete(self, tags: list[str]) -> list[str]:
        """BIO: every entity type gets both B- and I-, and O comes first; plain tags: sorted."""
        if self.scheme != "bio":
            return sorted(set(tags))
        for tag in tags:
            self._check_tag(tag, "task.labels")
        types = sorted({t[2:] for t in tags if t != "O"})
        return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]

    def labels_from(self, train_split) -> dict:
        feature = getattr(train_split.features.get("tags"), "feature", None)
        names = getattr(feature, "names", None)  # Hub datasets store tags as ClassLabel ints
        names = list(names) if names else None
        if self.labels is not None:
            return {**self.state_dict(), "tag_names": names}
        if names:
            return {**self.state_dict(), "labels": self._complete(names), "tag_names": names}
        seen = [t for row in train_split["tags"] for t in (row or [])]
        for t in seen:
            self._check_tag(t, "The training split")
        labels = self._complete(seen)
        if len(labels) < 2:
            raise TunelabError(f"The training split has the single tag {labels}: nothing to learn.")
        return {**self.state_dict(), "labels": labels, "tag_names": None}

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            "scheme": self.scheme,
            "configured_labels": self._configured_labels,
            "label_all_subwords": self.label_all_subwords,
        }

    def state_dict(self) -> dict:
        # tag_names: the source's tags are ClassLabel ints with these names
        return {
            "labels": self.labels,
            "scheme": self.scheme,
            "label_all_subwords": self.label_all_subwords,
            "tag_names": self._tag_names,
        }

    def load_state_dict(self, state: dict) -> None:
        self.labels, self.scheme = state["labels"], state["scheme"]
        self.label_all_subwords = state.get("label_all_subwords", False)
        self._tag_names = state.get("tag_names")

    def model_config(self) -> dict:
        return {
            "num_labels": len(self.labels),
            "id2label": dict(enumerate(self.labels)),
            "label2id": {t: i for i, t in enumerate(self.labels)},
        }

    # ---- features
    def _tag_ids(self, tags, n_words: int, row) -> list[int]:
        if tags is None or len(tags) != n_words:
            raise TunelabError(f"Row {row}: {n_words} words but {len(tags or [])} tags. Every word needs one tag.")
        label2id = {t: i for i, t in enumerate(self.labels)}
        names = self._tag_names
        ids = []
        for tag in tags:
            if names and isinstance(tag, int):
                tag = names[tag]
            if tag not in label2id:
                raise TunelabError(
                    f"Row {row}: tag {tag!r} is not in the label set {self.labels}. Fix the data, or "
                    "list every tag in task.labels."
                )
            ids.append(label2id[tag])
        return ids

    def preprocess(self, examples, tokenizer, max_length):
        column = "tokens" if "tokens" in examples else "text"
        rows = [words_and_starts(v) for v in examples[column]]
        words = [w for w, _ in rows]
        for i, w in enumerate(words):
            if not w:
                raise TunelabError(f"Row {examples['idx'][i] if 'idx' in examples else i}: no words to tag.")
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        features = {**enc, "words": words, "starts": [s for _, s in rows], "word_ids": [], "length": []}
        tags = examples.get("tags")
        if tags is not None:
            features["labels"] = []
        for i in range(len(words)):
            word_ids = enc.word_ids(i)
            features["word_ids"].append([-1 if w is None else w for w in word_ids])
            features["length"].append(len(word_ids))
            if tags is None:
                continue
            ids = self._tag_ids(tags[i], len(words[i]), examples["idx"][i] if "idx" in examples else i)
            labels, previous = [], None
            for w in word_ids:
                if w is None:
                    labels.append(-100)
                elif w != previous:
                    labels.append(ids[w])
                elif self.label_all_subwords:
                    tag = self.labels[ids[w]]
                    labels.append(self.labels.index("I-" + tag[2:]) if tag.startswith("B-") else ids[w])
                else:
                    labels.append(-100)
                previous = w
            features["labels"].append(labels)
        return features

    def collate(self, tokenizer):
        return PadCollator(tokenizer, pad_values={"word_ids": -1}, passthrough=("words", "starts"))

    # ---- objective and metrics
    def loss(self, outputs, batch):
        logits = outputs.logits.float()
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def loss_weight(self, batch):  # the loss is a mean over scored tokens
        return int((batch["labels"] != -100).sum())

    def metrics(self):
        from torchmetrics import MetricCollection

        scores = ("accuracy", "precision", "recall", "f1") if self.scheme == "bio" else ("accuracy",)
        return MetricCollection({score: WordTagMetric(self.labels, score) for score in scores}, compute_groups=False)

    @staticmethod
    def _first_subwords(word_ids: torch.Tensor) -> torch.Tensor:
        """Mask of each word's first sub-word (word_ids: -1 for special tokens and padding)."""
        previous = torch.cat([torch.full_like(word_ids[:, :1], -1), word_ids[:, :-1]], dim=1)
        return (word_ids >= 0) & (word_ids != previous)

    def update_metrics(self, metrics, model, outputs, batch):
        mask = self._first_subwords(batch["word_ids"]) & (batch["labels"] != -100)
        first = torch.zeros_like(mask)
        first[torch.arange(len(mask)), mask.long().argmax(1)] = True  # each sentence's first word
        metrics.update(outputs.logits.argmax(-1)[mask], batch["labels"][mask], first[mask])

    def postprocess(self, model, outputs, batch):
        probs = torch.softmax(outputs.logits.float(), -1)
        mask = self._first_subwords(batch["word_ids"])
        results = []
        for row in range(len(mask)):
            words, starts = batch["words"][row], batch["starts"][row]
            positions = mask[row].nonzero().flatten()
            tagged = []
            for pos in positions.tolist():
                w = int(batch["word_ids"][row, pos])
                score, best = probs[row, pos].max(-1)
                tagged.append(
                    {
                        "word": words[w],
                        "tag": self.labels[int(best)],
                        "score": round(float(score), 4),
                        "start": starts[w],
                        "end": starts[w] + len(words[w]),
                    }
                )
            result = {"words": tagged}
            if len(tagged) < len(words):
                result["truncated_words"] = len(words) - len(tagged)  # past max_length: not tagged
            if self.scheme == "bio":
                result["entities"] = entities(tagged)
            results.append(result)
        return results


def entities(tagged: list[dict]) -> list[dict]:
    """Entity spans from word-level BIO tags (seqeval's reading: an I- without B- starts one)."""
    from seqeval.metrics.sequence_labeling import get_entities

    found = []
    for kind, first, last in get_entities([w["tag"] for w in tagged]):
        found.append(
            {
                "type": kind,
                "text": " ".join(w["word"] for w in tagged[first : last + 1]),
                "start": tagged[first]["start"],
                "end": tagged[last]["end"],
            }
        )
    return found
