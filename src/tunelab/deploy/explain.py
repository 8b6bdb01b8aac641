"""``tunelab predict RUN --explain``: which words drove each prediction (integrated gradients, with captum).

Integrated gradients (Sundararajan et al., 2017) over the model's input embeddings: the straight path from a
baseline -- the same input with every token but the special ones ([CLS], [SEP]) replaced by padding -- to the
input. A token's attribution is summed over the embedding dimension, and the sub-tokens of one whitespace word
are summed into that word's. Each word's attribution is reported normalised (absolute values sum to 1; a
positive one pushed toward the explained answer, a negative one away from it), with captum's convergence delta:
raw sum minus (logit(input) - logit(baseline)), which a larger ``--explain-steps`` shrinks.

What is explained, per task:
  classification, multilabel, regression   the predicted label's logit (multilabel: the highest-scoring label;
                                           regression: the score), over the words of text (and text_pair)
  token_classification, tagging            each word's predicted tag (the logit at its first sub-token), over
                                           the words of its sentence
"""

from __future__ import annotations

import re
from bisect import bisect_right

from tunelab.errors import TunelabError

INSTALL = "pip install 'tunelab[explain]'"


def _integrated_gradients():
    """captum's LayerIntegratedGradients, imported only when --explain is asked for (an optional extra)."""
    try:
        from captum.attr import LayerIntegratedGradients
    except ImportError as err:
        raise TunelabError(
            f"tunelab predict --explain needs captum, which is not installed ({err}). Install it with: {INSTALL}"
        ) from err
    return LayerIntegratedGradients


def check_explainable(module) -> str:
    """``"sequence"`` or ``"token"``: how this run's answers are explained; a clear error if they cannot be."""
    from tunelab.data.raw_splits import task_label
    from tunelab.tasks.classification import SequenceClassification
    from tunelab.tasks.regression import Regression
    from tunelab.tasks.token_classification import TokenClassification

    task = module.task
    if isinstance(task, (SequenceClassification, Regression)):
        kind = "sequence"
    elif isinstance(task, TokenClassification):
        kind = "token"
    else:
        raise TunelabError(
            f"tunelab predict --explain: this run is task={task_label(task)}, whose answers have no per-word "
            "explanation here (--explain covers classification, multilabel, regression, token_classification "
            "and tagging runs). Run tunelab predict without --explain."
        )
    _integrated_gradients()
    if not callable(getattr(module.model, "get_input_embeddings", None)):
        raise TunelabError(
            f"tunelab predict --explain: the model ({type(module.model).__name__}) has no get_input_embeddings(), "
            "the layer the attributions are taken over. Give your own head a get_input_embeddings() method."
        )
    return kind


def explain_rows(module, datamodule, rows: list[dict], predictions: list[dict], n_steps: int = 50) -> None:
    """Add ``"explanation"`` to each of ``predictions`` (those of ``rows``, in the same order)."""
    if not isinstance(n_steps, int) or n_steps < 1:
        raise TunelabError(f"--explain-steps must be a whole number of at least 1, got {n_steps!r}.")
    kind = check_explainable(module)
    tokenizer = datamodule.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise TunelabError(
            f"tunelab predict --explain maps sub-tokens back to words with a fast tokenizer's offsets; "
            f"{type(tokenizer).__name__} is a slow one. Train with a backbone that has a tokenizer.json."
        )
    build = sequence_jobs if kind == "sequence" else token_jobs
    jobs = build(module.task, tokenizer, datamodule.max_length, rows, predictions)
    for job, (raw, delta) in zip(jobs, word_attributions(module, tokenizer, jobs, n_steps, datamodule.eval_batch_size)):
        entries = [{"word": w, "attribution": a} for w, a in zip(job["words"], normalised(raw))]
        job["out"]["words"] = entries[: job["n_text"]]
        if len(entries) > job["n_text"]:
            job["out"]["pair_words"] = entries[job["n_text"] :]
        job["out"]["convergence_delta"] = round(delta, 6)


def normalised(raw: list[float]) -> list[float]:
    """Attributions scaled so their absolute values sum to 1 (all zero stays zero)."""
    total = sum(abs(a) for a in raw)
    return [round(a / total, 4) if total else 0.0 for a in raw]


def _features(enc) -> dict:
    keep = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask")
    return {k: list(enc[k]) for k in keep if k in enc}


def sequence_jobs(task, tokenizer, max_length: int, rows: list[dict], predictions: list[dict]) -> list[dict]:
    """One attribution per row: the words of text (and text_pair), tokenized as the task tokenizes them."""
    jobs = []
    for row, prediction in zip(rows, predictions):
        texts = [row["text"]] + ([row["text_pair"]] if row.get("text_pair") is not None else [])
        enc = tokenizer(
            *texts, truncation=True, max_length=max_length, return_offsets_mapping=True, return_special_tokens_mask=True
        )
        spans = [[(m.start(), m.group()) for m in re.finditer(r"\S+", text)] for text in texts]
        base = [0, len(spans[0])]  # pair words are numbered after the text's
        token_words = []
        for (start, end), seq in zip(enc["offset_mapping"], enc.sequence_ids()):
            if seq is None or end <= start:
                token_words.append(-1)
            else:
                starts = [s for s, _ in spans[seq]]
                token_words.append(base[seq] + bisect_right(starts, start) - 1)
        out = {}
        if getattr(task, "name", "") == "regression":
            target = 0
        else:
            label = max(prediction["scores"], key=prediction["scores"].get) if task.multi_label else prediction["label"]
            target, out["label"] = task.labels.index(label), label
        prediction["explanation"] = out
        words = [w for seq in spans for _, w in seq]
        jobs.append(_job(_features(enc), token_words, words, len(spans[0]), target, out))
    return jobs


def token_jobs(task, tokenizer, max_length: int, rows: list[dict], predictions: list[dict]) -> list[dict]:
    """One attribution per tagged word: its predicted tag at its first sub-token, over its sentence's words."""
    from tunelab.tasks.token_classification import words_and_starts

    jobs = []
    for row, prediction in zip(rows, predictions):
        words, _ = words_and_starts(row["tokens"] if row.get("tokens") is not None else row["text"])
        enc = tokenizer(
            words, is_split_into_words=True, truncation=True, max_length=max_length, return_special_tokens_mask=True
        )
        token_words = [-1 if w is None else w for w in enc.word_ids()]
        first = {}
        for position, w in enumerate(token_words):
            if w >= 0:
                first.setdefault(w, position)
        prediction["explanation"] = entries = []
        for w, tagged in enumerate(prediction["words"]):  # truncated words were not tagged: nothing to explain
            entries.append({"word": tagged["word"], "tag": tagged["tag"]})
            target = (first[w], task.labels.index(tagged["tag"]))
            jobs.append(_job(_features(enc), token_words, words, len(words), target, entries[-1]))
    return jobs


def _job(features, token_words, words, n_text, target, out) -> dict:
    return {
        "features": features,
        "token_words": token_words,
        "words": words,
        "n_text": n_text,
        "target": target,
        "out": out,
    }


def word_attributions(module, tokenizer, jobs: list[dict], n_steps: int, batch_size: int) -> list[tuple]:
    """(raw attribution per word, convergence delta) per job, in job order; jobs run in length-sorted batches."""
    import torch

    model, task = module.model, module.task
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    left = getattr(tokenizer, "padding_side", "right") == "left"

    def logits(input_ids, attention_mask, token_type_ids):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        return task.forward(model, batch).logits.float()

    ig = _integrated_gradients()(logits, model.get_input_embeddings())
    order = sorted(range(len(jobs)), key=lambda j: len(jobs[j]["token_words"]))
    results: dict[int, tuple] = {}
    module.eval()
    for at in range(0, len(order), max(1, batch_size)):
        chunk = order[at : at + max(1, batch_size)]
        batch = tokenizer.pad([jobs[j]["features"] for j in chunk], return_tensors="pt")
        ids = batch["input_ids"].to(device)
        keep = batch["special_tokens_mask"].to(device).bool()  # [CLS]/[SEP] (and padding) stay in the baseline
        baseline = torch.where(keep, ids, torch.full_like(ids, pad_id))
        shifts = [ids.shape[1] - len(jobs[j]["token_words"]) if left else 0 for j in chunk]
        targets = [jobs[j]["target"] for j in chunk]
        if isinstance(targets[0], tuple):  # token classification: (position, tag), positions after padding
            targets = [(position + shift, tag) for (position, tag), shift in zip(targets, shifts)]
        types = batch["token_type_ids"].to(device) if "token_type_ids" in batch else None
        with torch.enable_grad():
            attributions, deltas = ig.attribute(
                ids,
                baselines=baseline,
                target=targets,
                additional_forward_args=(batch["attention_mask"].to(device), types),
                n_steps=n_steps,
                internal_batch_size=max(1, batch_size),
                return_convergence_delta=True,
            )
        per_token = attributions.float().sum(-1).detach().cpu().tolist()
        for row, (j, shift) in enumerate(zip(chunk, shifts)):
            raw = [0.0] * len(jobs[j]["words"])
            for position, w in enumerate(jobs[j]["token_words"]):
                if w >= 0:
                    raw[w] += per_token[row][position + shift]
            results[j] = (raw, float(deltas[row]))
    return [results[j] for j in range(len(jobs))]
