"""Scores of generated text against references (0-100), and the ``char_level`` spelling.

``exact_match`` (after collapsing whitespace), sacreBLEU ``bleu`` (corpus level) and ROUGE-1/2/L F1
(``rouge1``, ``rouge2``, ``rougeL``; rouge-score with stemming, mean over rows). ``GenerationMetric``
collects a split's (generated, reference) texts and scores them once (tunelab/tasks/seq2seq.py).
"""

from __future__ import annotations

import torch

from tunelab.errors import TunelabError
from tunelab.tasks.object_metric import ObjectListMetric

SCORES = ("exact_match", "bleu", "rouge1", "rouge2", "rougeL")
SPACE = "_"  # a space of the text, in char_level spelling


def spell(text: str) -> str:
    """``"big cat"`` -> ``"b i g _ c a t"``."""
    return " ".join(SPACE if ch == " " else ch for ch in " ".join(text.split()))


def unspell(text: str) -> str:
    """The inverse of ``spell`` on decoded text (decoders may drop or add spaces between characters)."""
    return " ".join("".join(text.split()).split(SPACE)).strip()


def _norm(text: str) -> str:
    return " ".join(text.split())


def exact_match(predictions: list[str], references: list[str]) -> float:
    if not references:
        return 0.0
    return 100.0 * sum(_norm(p) == _norm(r) for p, r in zip(predictions, references)) / len(references)


def bleu(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score) if references else 0.0


def _rouge_scorer():
    """rouge-score imports absl, whose logging handler (created at import, attached to no logger here)
    closes the stream it was created with whenever logging is reconfigured (Hydra does, once per job)
    unless that stream is sys.stderr at that moment: under pytest's capture or a console wrapper (W&B)
    it would close someone else's file. Point it at the process's own stderr, which it never closes."""
    import sys

    from absl import logging as absl_logging
    from rouge_score import rouge_scorer

    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
    return rouge_scorer


def rouge(predictions: list[str], references: list[str], kind: str) -> float:
    rouge_scorer = _rouge_scorer()
    if not references:
        return 0.0
    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    return 100.0 * sum(scorer.score(r, p)[kind].fmeasure for p, r in zip(predictions, references)) / len(references)


def score(name: str, predictions: list[str], references: list[str]) -> float:
    if name == "exact_match":
        return exact_match(predictions, references)
    if name == "bleu":
        return bleu(predictions, references)
    if name in ("rouge1", "rouge2", "rougeL"):
        return rouge(predictions, references, name)
    raise TunelabError(f"Unknown seq2seq score '{name}'; the scores are {list(SCORES)}.")


class GenerationMetric(ObjectListMetric):
    """One score over the (generated, reference) texts of a whole split."""

    def __init__(self, name: str):
        super().__init__()
        if name not in SCORES:
            raise TunelabError(f"Unknown seq2seq score '{name}'; the scores are {list(SCORES)}.")
        self.name = name

    def update(self, predictions: list[str], references: list[str]) -> None:
        self.items.extend(zip(predictions, references))

    def compute(self) -> torch.Tensor:
        return torch.tensor(score(self.name, [p for p, _ in self.items], [r for _, r in self.items]))
