"""Trivial baselines for the task-head experiments, on exactly the experiment's splits.

    python bench/heads_baselines.py pos_oanc_minilm ner_hironsan_minilm

Tagging: the single majority tag, and each word's most frequent training tag (unseen words get
the majority tag). BIO NER: every word tagged with its most frequent training tag (entity F1).
The untuned-model baseline of the causal LM is a run with +trainer.limit_train_batches=0.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tunelab.config import config_dir


def raw_splits(experiment: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    task = instantiate(cfg.task)
    return instantiate(cfg.data, task=task)._raw_splits(), task


def _tags(split) -> list[list[str]]:
    names = getattr(split.features["tags"].feature, "names", None)  # ClassLabel ids -> tag names
    return [[names[t] for t in row] for row in split["tags"]] if names else list(split["tags"])


def tagging_baselines(train, test) -> dict:
    train_tags, truth = _tags(train), _tags(test)
    overall = Counter(t for tags in train_tags for t in tags)
    majority = overall.most_common(1)[0][0]
    per_word = defaultdict(Counter)
    for words, tags in zip(train["tokens"], train_tags):
        for w, t in zip(words, tags):
            per_word[w][t] += 1
    guess = [[per_word[w].most_common(1)[0][0] if w in per_word else majority for w in words]
             for words in test["tokens"]]
    flat = [(g, t) for gs, ts in zip(guess, truth) for g, t in zip(gs, ts)]
    from seqeval.metrics import f1_score

    return {"majority_tag": majority,
            "majority_tag_accuracy": sum(t == majority for _, t in flat) / len(flat),
            "most_frequent_tag_per_word_accuracy": sum(g == t for g, t in flat) / len(flat),
            "most_frequent_tag_per_word_entity_f1": f1_score(truth, guess) if majority == "O" else None}


def qa_baselines(test) -> dict:
    """Always "no answer"; and the first name/number of the context sentence sharing most words
    with the question (finds the right sentence, ignores where the "what" is)."""
    import re

    from tunelab.data.corpora import ANSWER_CANDIDATE, sentences
    from tunelab.tasks.question_answering import exact_match, token_f1

    rows = list(zip(test["question"], test["context"], test["answers"]))
    guesses = []
    for question, context, _ in rows:
        words = set(question.lower().split())
        best = max(sentences(context), key=lambda s: len(words & set(s.lower().split())))
        found = re.search(ANSWER_CANDIDATE, best)
        guesses.append(found.group() if found else "")
    golds = [a["text"] for _, _, a in rows]
    score = lambda f, gs: 100 * sum(f(g, gold) for g, gold in zip(gs, golds)) / len(golds)  # noqa: E731
    return {"no_answer_exact_match": score(exact_match, [""] * len(golds)),
            "sentence_match_exact_match": score(exact_match, guesses), "sentence_match_f1": score(token_f1, guesses)}


if __name__ == "__main__":
    for name in sys.argv[1:] or ["pos_oanc_minilm"]:
        splits, _ = raw_splits(name)
        found = qa_baselines(splits["test"]) if "question" in splits["test"].column_names else \
            tagging_baselines(splits["train"], splits["test"])
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in found.items()})
