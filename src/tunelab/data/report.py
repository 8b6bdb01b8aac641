"""What tokenization does to the user's data, said at set-up instead of found out later.

  - truncation: per split, how many rows are longer than the length they are cut at
    (``data.max_length``; seq2seq sources ``task.max_source_length``, targets ``task.max_target_length``)
    and the length that would keep 95% of them whole;
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
            "target": (task.max_target_length + 1, "task.max_target_length"),
        }  # + the dropped [CLS]
    return {"tokens": (max_length, "data.max_length"), "text": (max_length, "data.max_length")}


def _lengths(tokenizer, inputs) -> list[int]:
    if inputs and isinstance(inputs[0], list):
        enc = tokenizer(inputs, is_split_into_words=True, truncation=False)
    else:
        enc = tokenizer(inputs, truncation=False)
    return [len(ids) for ids in enc["input_ids"]]


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
            report.setdefault(split, {})[column] = {
                "rows": int(len(lengths)),
                "cut": int((lengths > limit).sum()),
                "limit": int(limit),
                "setting": setting,
                "keeps_95": int(math.ceil(np.percentile(lengths, 95))),
                "longest": int(lengths.max()),
            }
    return report


def _plain_strings(task, ds) -> list[str]:
    return [
        " ".join(v) if isinstance(v, list) else v
        for values in _texts(task, ds).values()
        for v in values
        if isinstance(v, (str, list))
    ]


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
            if r["cut"]:
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


def build(splits, task, tokenizer, max_length: int, seed: int = 0) -> dict:
    return {
        "truncation": truncation(splits, task, tokenizer, max_length, seed),
        "tokenizer_fit": tokenizer_fit(splits["train"], task, tokenizer),
    }
