"""``tunelab predict RUN``: predictions of a finished run, one JSON line per input, in input order.

Input is a text file (one input per line), a JSONL file of rows under the canonical column names
(``{"text": ..., "text_pair": ...}``) or the training data's own (``data.columns``), or standard input
(JSON lines when its first line is an object). What each task takes is in ``FORMATS`` (and --help). No Trainer is involved: a plain
inference loop over length-sorted batches, put back in input order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.errors import TunelabError

# what one input is, per task (--help, and the error when the input does not fit)
FORMATS = {
    "classification": 'one text per line, or JSON lines {"text": ...} (also {"text_pair": ...} for pairs)',
    "multilabel": 'one text per line, or JSON lines {"text": ...}',
    "regression": 'one text per line, or JSON lines {"text": ..., "text_pair": ...}',
    "tagging": 'one sentence per line (split on whitespace), or JSON lines {"tokens": [words]} or {"text": ...}',
    "token_classification": 'one sentence per line, or JSON lines {"tokens": [words]} or {"text": ...}',
    "seq2seq": 'one source per line, or JSON lines {"text": ...} (char_level: plain words, tunelab spells them)',
    "causal_lm": 'one prompt per line, or JSON lines {"text": ...} / {"prompt": ...}',
    "question_answering": 'JSON lines {"question": ..., "context": ...} only',
    "multiple_choice": 'JSON lines {"text": ..., "choices": [...]} (and "question") only',
}
# tasks whose one input is more than one text: plain lines cannot carry it
JSON_ONLY = {"question_answering": ("question", "context"), "multiple_choice": ("text", "choices")}


def _canonical(row: dict, columns: dict) -> dict:
    """A JSON row under the training data's own column names (or the canonical ones) -> canonical columns."""
    out = dict(row)
    for canon, src in (columns or {}).items():
        if canon not in out and isinstance(src, str) and src in row:
            out[canon] = row[src]
    if "question" in out and "text" not in out:
        out["text"] = out["question"]  # QA rows: the question is the text
    return out


def read_rows(source: str | None, task_name: str = "classification", columns: dict | None = None) -> list[dict]:
    """Input rows in canonical columns. ``columns``: the run's data.columns (a row may use those names)."""
    where = "standard input" if source in (None, "-") else source
    if source in (None, "-"):
        lines = sys.stdin.read().splitlines()
        jsonl = next((line.lstrip().startswith("{") for line in lines if line.strip()), False)
    else:
        path = Path(source)
        if not path.is_file():
            raise TunelabError(f"Input file '{source}' does not exist.")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise TunelabError(f"Input file '{source}' is not UTF-8 text ({err}).") from err
        jsonl = path.suffix.lower() in (".jsonl", ".json")
    fmt = FORMATS.get(task_name, FORMATS["classification"])
    needs = JSON_ONLY.get(task_name)
    if needs and not jsonl and any(line.strip() for line in lines):
        raise TunelabError(
            f"task={task_name} predicts from {fmt}: plain text lines ({where}) cannot carry both "
            f"{' and '.join(repr(k) for k in needs)}. Write one JSON object per line, e.g. "
            f'{{"{needs[0]}": "...", "{needs[1]}": ...}}, into a .jsonl file (or pipe it in).'
        )
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if jsonl:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TunelabError(f"{where}:{n} is not valid JSON ({err.msg}).") from err
            rows.append(check_row(row, f"{where}:{n}", task_name, columns))
        else:
            rows.append({"text": line})
    if not rows:
        raise TunelabError(f"No inputs: give --input FILE or pipe them in; task={task_name} takes {fmt}.")
    if not jsonl:  # said, not silent: a text with line breaks became several inputs
        print(
            f"predict: {len(rows)} inputs from {where}, one per line (a text with line breaks: use .jsonl).",
            file=sys.stderr,
        )
    return rows


# the keys each task reads from a row (their values are checked: a wrong type would fail a whole batch later)
READS = {
    "tagging": ("text", "tokens"),
    "token_classification": ("text", "tokens"),
    "question_answering": ("text", "question", "context"),
    "multiple_choice": ("text", "question", "choices"),
    "causal_lm": ("text", "prompt"),
}
WORD_LISTS = ("tokens", "choices")


def check_row(row, where: str, task_name: str, columns: dict | None) -> dict:
    """One parsed JSON input (a file's line, a ``tunelab serve`` input) -> its row in canonical columns."""
    fmt = FORMATS.get(task_name, FORMATS["classification"])
    wanted = JSON_ONLY.get(task_name) or ("text",)
    tagging = task_name in ("tagging", "token_classification")
    row = _canonical(row, columns) if isinstance(row, dict) else row
    if not (isinstance(row, dict) and (all(k in row for k in wanted) or (tagging and "tokens" in row))):
        names = {*wanted, *(src for c, src in (columns or {}).items() if c in wanted and isinstance(src, str))}
        if tagging:
            names |= {"tokens", *([columns["tokens"]] if isinstance((columns or {}).get("tokens"), str) else [])}
        raise TunelabError(
            f"{where} must be an object with the key(s) {' + '.join(map(repr, wanted))} "
            f"(or the training data's column names: {sorted(names)}); task={task_name} takes {fmt}."
        )
    for key in (k for k in READS.get(task_name, ("text", "text_pair")) if k in row):
        value = row[key]
        if key in WORD_LISTS:
            ok = isinstance(value, list) and all(isinstance(word, str) for word in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            kind = "a list of strings" if key in WORD_LISTS else "a string"
            raise TunelabError(
                f"{where}: {key!r} must be {kind}, not {json.dumps(value)[:60]}; task={task_name} takes {fmt}."
            )
    return row


def rows_from_inputs(inputs: list, task_name: str = "classification", columns: dict | None = None) -> list[dict]:
    """Already-parsed inputs (``tunelab serve``'s ``"inputs"``), checked as ``read_rows`` checks a file's lines:
    a string is one text (a plain line), an object one row."""
    needs = JSON_ONLY.get(task_name)
    rows = []
    for n, item in enumerate(inputs):
        if isinstance(item, str) and needs:
            raise TunelabError(
                f"task={task_name} predicts from {FORMATS[task_name]}: a plain string (inputs[{n}]) cannot carry "
                f"both {' and '.join(repr(k) for k in needs)}. Send an object, e.g. "
                f'{{"{needs[0]}": "...", "{needs[1]}": ...}}.'
            )
        rows.append({"text": item} if isinstance(item, str) else check_row(item, f"inputs[{n}]", task_name, columns))
    return rows


def predict_rows(module, datamodule, rows: list[dict]) -> list[dict]:
    """Predictions for ``rows`` in their order (batches run longest-first for speed)."""
    import torch

    datamodule.set_predict_inputs(rows)
    module.eval()
    results: dict[int, dict] = {}
    with torch.inference_mode():
        for batch_idx, batch in enumerate(datamodule.predict_dataloader()):
            for idx, row in module.predict_step(batch, batch_idx):  # a long input may come back in windows
                results[idx] = module.task.merge_prediction(results[idx], row) if idx in results else row
    return [results[i] for i in range(len(rows))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tunelab predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="input per task:\n" + "\n".join(f"  {k:<22}{v}" for k, v in FORMATS.items()),
    )
    parser.add_argument("run", help="a run directory (or 'latest')")
    parser.add_argument("--input", "-i", help="text file (one input per line) or .jsonl; default: standard input")
    parser.add_argument("--output", "-o", help="write JSON lines here instead of standard output")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--explain", action="store_true", help="add per-word attributions (integrated gradients)")
    parser.add_argument("--explain-steps", type=int, default=50, help="integration steps of --explain")
    args = parser.parse_args(argv)

    from tunelab.data.raw_splits import task_label
    from tunelab.run.record import load_run

    if args.output:  # before the model loads and predicts, not after
        check_output(args.output)
    cfg, module, datamodule, _ = load_run(args.run)
    if args.explain:  # captum installed and the task explainable, before anything is predicted
        from tunelab.deploy.explain import check_explainable, explain_rows

        check_explainable(module)
    rows = read_rows(args.input, task_label(module.task), dict(datamodule.columns))
    datamodule.eval_batch_size = args.batch_size
    predictions = predict_rows(module, datamodule, rows)
    if args.explain:
        explain_rows(module, datamodule, rows, predictions, args.explain_steps)
    lines = "".join(json.dumps(prediction, ensure_ascii=False) + "\n" for prediction in predictions)
    if args.output:
        Path(args.output).expanduser().write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    return 0


def check_output(output: str) -> None:
    """--output is a file path whose folder can be written (tried, not guessed from permissions)."""
    from tunelab.errors import check_writable

    path = Path(output).expanduser()
    if path.is_dir():
        raise TunelabError(
            f"--output {output} is a folder. Give a file name, e.g. --output {path / 'predictions.jsonl'}."
        )
    check_writable(path.parent, "the predictions (--output) into", "Choose a writable place with --output FILE.")
