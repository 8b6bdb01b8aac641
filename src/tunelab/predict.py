"""``tunelab predict RUN``: predictions of a finished run, one JSON line per input, in input order.

Input is a text file (one text per line), a JSONL file of rows with canonical columns
(``{"text": ..., "text_pair": ...}``), or standard input. No Trainer is involved: a plain
inference loop over length-sorted batches, put back in input order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.errors import TunelabError


def read_rows(source: str | None) -> list[dict]:
    if source in (None, "-"):
        lines = sys.stdin.read().splitlines()
        jsonl = False
    else:
        path = Path(source)
        if not path.is_file():
            raise TunelabError(f"Input file '{source}' does not exist.")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise TunelabError(f"Input file '{source}' is not UTF-8 text ({err}).") from err
        jsonl = path.suffix.lower() == ".jsonl"
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if jsonl:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TunelabError(f"{source}:{n} is not valid JSON ({err.msg}).") from err
            if not isinstance(row, dict) or "text" not in row:
                raise TunelabError(f"{source}:{n} must be an object with a \"text\" key.")
            rows.append(row)
        else:
            rows.append({"text": line})
    if not rows:
        raise TunelabError("No input texts: give --input FILE (one text per line, or .jsonl) or pipe them in.")
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
    parser = argparse.ArgumentParser(prog="tunelab predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory (or 'latest')")
    parser.add_argument("--input", "-i", help="text file (one per line) or .jsonl; default: standard input")
    parser.add_argument("--output", "-o", help="write JSON lines here instead of standard output")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from tunelab.rundir import load_run

    rows = read_rows(args.input)
    if args.output:  # before the model loads and predicts, not after
        check_output(args.output)
    _, module, datamodule, _ = load_run(args.run)
    datamodule.eval_batch_size = args.batch_size
    predictions = predict_rows(module, datamodule, rows)
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
        raise TunelabError(f"--output {output} is a folder. Give a file name, e.g. --output {path / 'predictions.jsonl'}.")
    check_writable(path.parent, "the predictions (--output) into", "Choose a writable place with --output FILE.")
