"""What tokenization does to the user's data, said at set-up instead of found out later.

  - truncation: per split, how many rows are longer than the length they are cut at
    (``data.max_length``; seq2seq sources ``task.max_source_length``, targets ``task.max_target_length``)
    and the length that would keep 95% of them whole;
  - question answering: how many (question, context) rows need more than one window of ``data.max_length``
    (nothing is lost: the context is cut into overlapping windows) and how many have their answer in no single
    window (it trains as "no answer"), counted by the task's own windowing; the length that keeps 95% in one;
  - multiple choice: rows with a (context, choice) pair cut at ``data.max_length`` (the task truncates each pair);
  - fit of the tokenizer: on a sample of the training texts, the share of [UNK] tokens, the share of
    characters the tokenizer's normalizer changes beyond lower-casing (accents stripped: an uncased
    English model turns "ñ" into "n", so a model trained on it can never write "ñ"), and word pieces
    per word (reported only: single rare words or names score high in any language). Above the [UNK]
    or changed-character threshold it warns and says how to pick a multilingual backbone.

The report is kept in the tokenization cache next to the splits, so a cache hit prints it too.
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np

UNK_WARN = 0.01  # share of [UNK] tokens
CHANGED_WARN = 0.01  # share of characters changed by normalization (beyond lower-casing)
SAMPLE = 2000  # training rows measured for the tokenizer's fit
MAX_ROWS = 20000  # rows per split measured for truncation (a seeded sample above this)


def _texts(task, rows) -> dict[str, list]:
    """{what: inputs as the task tokenizes them} for the length check, and the plain strings for the fit."""
    name = getattr(task, "name", "")
    cols = rows.column_names
    if name == "token_classification":
        return {"tokens": [list(t) for t in rows["tokens"] if t]}
    if name == "seq2seq":
        from tunelab.tasks.seq2seq import spell

        def form(texts, prefix=""):
            return [spell(prefix + t) if task.char_level else prefix + t for t in texts if isinstance(t, str)]

        out = {"text": form(rows["text"], task.source_prefix)}
        if "target" in cols:
            out["target"] = form(rows["target"])
        return out
    if name == "question_answering" and {"question", "context"} <= set(cols):
        return {"question + context": [(q.lstrip(), c) for q, c in zip(rows["question"], rows["context"])]}
    if name == "multiple_choice" and {"text", "choices"} <= set(cols):
        questions = rows["question"] if "question" in cols else [None] * len(rows)
        return {
            "text + choice": [
                [(text, f"{q} {c}".strip() if isinstance(q, str) and q.strip() else c) for c in choices]
                for text, choices, q in zip(rows["text"], rows["choices"], questions)
            ]
        }
    if name in ("sequence_classification", "regression", "causal_lm") and "text" in cols:
        return {"text": [t for t in rows["text"] if isinstance(t, str) and t.strip()]}
    return {}


def _limits(task, max_length: int) -> dict[str, tuple[int, str]]:
    if getattr(task, "name", "") == "seq2seq":
        return {
            "text": (
                task.max_source_length or max_length,
                "task.max_source_length" if task.max_source_length else "data.max_length",
            ),
            "target": (task.max_target_length, "task.max_target_length"),
        }
    return dict.fromkeys(("tokens", "text", "question + context", "text + choice"), (max_length, "data.max_length"))


def _lengths(tokenizer, inputs) -> list[int]:
    """Tokens per row without truncation; a multiple-choice row counts its longest (context, choice) pair."""
    if inputs and isinstance(inputs[0], list) and isinstance(inputs[0][0], tuple):
        pairs = [pair for row in inputs for pair in row]
        enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=False)
        each, out = iter(len(ids) for ids in enc["input_ids"]), []
        for row in inputs:
            out.append(max(next(each) for _ in row))
        return out
    if inputs and isinstance(inputs[0], tuple):
        enc = tokenizer([a for a, _ in inputs], [b for _, b in inputs], truncation=False)
    elif inputs and isinstance(inputs[0], list):
        enc = tokenizer(inputs, is_split_into_words=True, truncation=False)
    else:
        enc = tokenizer(inputs, truncation=False)
    return [len(ids) for ids in enc["input_ids"]]


def _answers_lost(task, ds, tokenizer, max_length: int) -> int:
    """Rows with an answer that no window holds whole, by the task's own windowing (they train as "no answer")."""
    if "answers" not in ds.column_names:
        return 0
    rows = {k: list(ds[k]) for k in ("question", "context", "answers")}
    features = task.preprocess({**rows, "idx": list(range(len(ds)))}, tokenizer, max_length)
    found = {i for i, start in zip(features["idx"], features["start_positions"]) if start > 0}
    return sum(1 for i, a in enumerate(rows["answers"]) if (a or {}).get("text") and i not in found)


def truncation(splits, task, tokenizer, max_length: int, seed: int = 0) -> dict:
    """{split: {column: {rows, cut, limit, setting, keeps_95}}} for the columns a task truncates."""
    import transformers

    transformers.logging.set_verbosity_error()  # "sequence longer than the model's maximum": this is the check
    report = {}
    for split, ds in splits.items():
        if len(ds) > MAX_ROWS:
            ds = ds.select(np.sort(np.random.default_rng(seed).permutation(len(ds))[:MAX_ROWS]))
        for column, inputs in _texts(task, ds).items():
            if not inputs:
                continue
            limit, setting = _limits(task, max_length)[column]
            lengths = np.array(_lengths(tokenizer, inputs))
            if column == "target":  # target tokens as learned: [CLS] dropped, [SEP] the end of sequence
                lengths = lengths - 1
            entry = report.setdefault(split, {})[column] = {
                "rows": int(len(lengths)),
                "cut": int((lengths > limit).sum()),
                "limit": int(limit),
                "setting": setting,
                "keeps_95": int(math.ceil(np.percentile(lengths, 95))),
                "longest": int(lengths.max()),
            }
            if column == "question + context":  # windows, not cuts: what is lost is an answer split by them
                entry["windows"] = True
                entry["answers_lost"] = _answers_lost(task, ds, tokenizer, max_length)
    return report


def _plain_strings(task, ds) -> list[str]:
    out = []
    for values in _texts(task, ds).values():
        for v in values:
            if isinstance(v, tuple):  # (question, context)
                out += list(v)
            elif isinstance(v, list) and v and isinstance(v[0], tuple):  # a context and its choices
                out += [v[0][0], *(b for _, b in v)]
            elif isinstance(v, (str, list)):
                out.append(" ".join(v) if isinstance(v, list) else v)
    return out


def tokenizer_fit(train, task, tokenizer) -> dict | None:
    """[UNK] share, changed-character share (with examples) and pieces per word on a training sample."""
    texts = _plain_strings(task, train.select(range(min(SAMPLE, len(train)))))
    if getattr(task, "name", "") == "seq2seq" and task.char_level:
        from tunelab.tasks.seq2seq import unspell

        texts = [unspell(t) for t in texts]
    if not texts:
        return None
    enc = tokenizer(texts, add_special_tokens=False, truncation=False)
    ids = [i for row in enc["input_ids"] for i in row]
    unk = tokenizer.unk_token_id
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None)
    chars = [c for t in texts for c in t if not c.isspace()]
    changed: dict[str, str] = {}
    if normalizer is not None:
        for c in set(chars):
            if unicodedata.category(c).startswith("C"):
                continue
            out = normalizer.normalize_str(c).strip()
            if out != c.lower():
                changed[c] = out
    n_changed = sum(1 for c in chars if c in changed)
    words = sum(len(t.split()) for t in texts)
    return {
        "rows": len(texts),
        "tokens": len(ids),
        "unk_share": (sum(1 for i in ids if i == unk) / len(ids)) if ids and unk is not None else 0.0,
        "changed_share": n_changed / len(chars) if chars else 0.0,
        "changed_examples": dict(sorted(changed.items(), key=lambda kv: -sum(c == kv[0] for c in chars))[:8]),
        "pieces_per_word": len(ids) / words if words else 0.0,
    }


def lines(report: dict, backbone: str) -> list[str]:
    """The report as the lines `tunelab train` prints (warnings start with WARNING)."""
    out = []
    for split, columns in report.get("truncation", {}).items():
        for column, r in columns.items():
            if r.get("windows"):
                out += _window_lines(split, r)
            elif r["cut"]:
                out.append(
                    f"WARNING data: {r['cut']} of {r['rows']} {split} rows ({100 * r['cut'] / r['rows']:.1f}%) "
                    f"have their {column} cut at {r['setting']}={r['limit']} tokens (longest {r['longest']}); "
                    f"{r['setting']}={r['keeps_95']} keeps 95% whole."
                )
            else:
                out.append(
                    f"data: {split} {column}: none cut at {r['setting']}={r['limit']} (longest {r['longest']} tokens)."
                )
    fit = report.get("tokenizer_fit")
    if fit:
        problems = []
        if fit["unk_share"] > UNK_WARN:
            problems.append(f"{100 * fit['unk_share']:.1f}% of tokens are [UNK] (unknown to its vocabulary)")
        if fit["changed_share"] > CHANGED_WARN:
            shown = ", ".join(f"{k!r}->{v!r}" for k, v in fit["changed_examples"].items())
            problems.append(
                f"its normalization changes {100 * fit['changed_share']:.1f}% of the characters ({shown}): "
                "the model never sees them and a generating model can never write them"
            )
        summary = (
            f"data: tokenizer of {backbone} on {fit['rows']} training texts: {100 * fit['unk_share']:.2f}% [UNK], "
            f"{100 * fit['changed_share']:.2f}% characters changed, {fit['pieces_per_word']:.2f} pieces per word."
        )
        out.append(summary)
        if problems:
            out.append(
                f"WARNING data: the tokenizer of {backbone} fits this data poorly: {'; '.join(problems)}. "
                "A multilingual backbone fits better: model.backbone=<Hub id> online (e.g. "
                "bert-base-multilingual-cased, xlm-roberta-base), or model.backbone=/path/to/a/local/folder "
                "offline (docs/data.md, 'Other languages')."
            )
    return out


def _window_lines(split: str, r: dict) -> list[str]:
    share = f"{r['cut']} of {r['rows']} {split} rows ({100 * r['cut'] / r['rows']:.1f}%)"
    if r["cut"]:
        out = [
            f"data: {share} need more than one window at {r['setting']}={r['limit']} tokens (question + context, "
            f"longest {r['longest']}; the context is split into windows overlapping by task.doc_stride tokens"
            f"); {r['setting']}={r['keeps_95']} keeps 95% in one window."
        ]
    else:
        out = [f"data: {split} question + context: all in one window at {r['setting']}={r['limit']} (longest "
               f"{r['longest']} tokens)."]  # fmt: skip
    if r.get("answers_lost"):
        out.append(
            f"WARNING data: {r['answers_lost']} of {r['rows']} {split} rows have their answer in no single window "
            f"(it crosses a window's edge or is longer than one): they train as 'no answer'. Raise {r['setting']} "
            f"(to {r['keeps_95']}: 95% in one window) or task.doc_stride."
        )
    return out


def build(splits, task, tokenizer, max_length: int, seed: int = 0) -> dict:
    return {
        "truncation": truncation(splits, task, tokenizer, max_length, seed),
        "tokenizer_fit": tokenizer_fit(splits["train"], task, tokenizer),
    }
