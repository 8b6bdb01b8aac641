"""Trivial baselines for the task-head experiments, on exactly the experiment's splits.

    python bench/heads_baselines.py pos_oanc_minilm ner_hironsan_minilm

Tagging: the single majority tag, and each word's most frequent training tag (unseen words get
the majority tag). BIO NER: every word tagged with its most frequent training tag (entity F1).
The untuned-model baseline of the causal LM is a run with +trainer.limit_train_batches=0.
Seq2seq: copy the input; plurals also "append s"; summaries also the body's first sentence
(lead-of-body) and the oracle sentence (the body sentence closest to the reference: what the best
one-sentence extract could score). Scored like the task scores generations: references are the
decoded labels and every guess goes through the same tokenizer round trip (an uncased tokenizer
lowercases both sides).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tunelab.config import config_dir


def raw_splits(experiment: str):
    """(raw splits, task, data module) of an experiment."""
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    task = instantiate(cfg.task)
    data = instantiate(cfg.data, task=task)
    return data._raw_splits(), task, data


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
    guess = [
        [per_word[w].most_common(1)[0][0] if w in per_word else majority for w in words] for words in test["tokens"]
    ]
    flat = [(g, t) for gs, ts in zip(guess, truth) for g, t in zip(gs, ts)]
    from seqeval.metrics import f1_score

    return {
        "majority_tag": majority,
        "majority_tag_accuracy": sum(t == majority for _, t in flat) / len(flat),
        "most_frequent_tag_per_word_accuracy": sum(g == t for g, t in flat) / len(flat),
        "most_frequent_tag_per_word_entity_f1": f1_score(truth, guess) if majority == "O" else None,
    }


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
    return {
        "no_answer_exact_match": score(exact_match, [""] * len(golds)),
        "sentence_match_exact_match": score(exact_match, guesses),
        "sentence_match_f1": score(token_f1, guesses),
    }


def seq2seq_baselines(test, task, tokenizer, max_length: int) -> dict:
    from tunelab.data.corpora import sentences
    from tunelab.tasks.seq2seq import SCORES, score, spell

    task.setup(tokenizer, None)
    labels = task.preprocess({"text": test["text"], "target": test["target"]}, tokenizer, max_length)["labels"]
    references = [task.decode(ids) for ids in labels]

    def roundtrip(text: str) -> str:  # what the tokenizer can give back (no truncation: the whole guess)
        return task.decode(tokenizer(spell(text) if task.char_level else text)["input_ids"])

    guesses = {"copy_input": list(test["text"])}
    if task.char_level:
        guesses["append_s"] = [t + "s" for t in test["text"]]
    else:
        guesses["lead_of_body"] = [sentences(t)[0] for t in test["text"]]

        def best_sentence(text: str, reference: str) -> str:  # peeks at the reference: a ceiling, not a baseline
            return max(sentences(text), key=lambda s: score("rougeL", [roundtrip(s)], [reference]))

        guesses["oracle_sentence"] = [best_sentence(t, r) for t, r in zip(test["text"], references)]
    return {
        f"{guess}_{name}": score(name, [roundtrip(g) for g in texts], references)
        for guess, texts in guesses.items()
        for name in SCORES
    }


if __name__ == "__main__":
    for name in sys.argv[1:] or ["pos_oanc_minilm"]:
        splits, task, data = raw_splits(name)
        columns = splits["test"].column_names
        if "target" in columns:
            found = seq2seq_baselines(splits["test"], task, data.tokenizer, data.max_length)
        else:
            found = (
                qa_baselines(splits["test"])
                if "question" in columns
                else tagging_baselines(splits["train"], splits["test"])
            )
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in found.items()})
