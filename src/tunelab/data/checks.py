"""Checks of the user's data that name the file, the line and the cause.

``datasets.load_dataset`` reports a malformed file as "An error occurred while generating the
dataset", with the file and line only in a log record (or nowhere: pandas reads a CSV whose rows all
have one field more than the header by turning the first column into an index). These checks read
the file once with the standard library's csv and json parsers, which report line numbers, before
``datasets`` reads it; they run only when the splits are built (a cache hit reads no file).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tunelab.errors import TunelabError

_DELIMITERS = ",;\t|"


def check_file(split: str, path: str) -> Path:
    """The data file exists and is a regular, non-empty file."""
    p = Path(path).expanduser()
    where = f"(data.loader.{split})"
    if p.is_dir():
        inside = sorted(q.name for q in p.iterdir() if q.is_file())[:3]
        raise TunelabError(
            f"The {split} file '{path}' is a folder, not a file {where}. Name the file itself"
            f"{f', e.g. {p / inside[0]}' if inside else ''}."
        )
    if p.exists() and not p.is_file():
        raise TunelabError(
            f"The {split} file '{path}' is not a regular file (a pipe, socket or device) {where}. "
            "tunelab reads a data file more than once (check, load, cache key): save the data to a file."
        )
    if not p.is_file():
        raise TunelabError(f"The {split} file '{path}' does not exist {where}. Check the path.")
    if p.stat().st_size == 0:
        raise TunelabError(f"The {split} file '{path}' is empty.")
    return p


def check_utf8(split: str, path: Path) -> None:
    """Every line decodes as UTF-8 (line by line: a newline byte never falls inside a UTF-8 character)."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TunelabError(
                    f"The {split} file '{path}' is not UTF-8 text ({path}:{n}, byte {err.start} of the line: "
                    f"{line[err.start : err.start + 4]!r}). Re-encode it as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
                ) from None


def _guess_delimiter(path: Path, current: str) -> str | None:
    with open(path, encoding="utf-8-sig", newline="") as f:
        sample = f.read(1 << 16)
    try:
        guessed = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return None
    return guessed if guessed != current else None


def _delimiter_hint(path: Path, delimiter: str) -> str:
    guess = _guess_delimiter(path, delimiter)
    if guess:
        return f"The file looks separated by {guess!r}: set data.loader.delimiter={guess!r}."
    return f"If the file uses another separator than {delimiter!r}, set data.loader.delimiter=<it>."


def check_csv(split: str, path: Path, delimiter: str) -> None:
    """A header and at least one row; no row with more fields than the header; every quote closed."""
    header, start, rows = None, 1, 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        try:
            for row in reader:
                if row and header is None:
                    header = row
                elif row:
                    rows += 1
                    if len(row) > len(header):
                        raise TunelabError(
                            f"{path}:{start}: {len(row)} fields, but the header has {len(header)} {header}. A "
                            f'{delimiter!r} inside a text must be quoted ("..."). {_delimiter_hint(path, delimiter)}'
                        )
                start = reader.line_num + 1
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                raise TunelabError(
                    f"{path}:{start}: a quoted field starts on this line and is never closed (an unbalanced '\"'). "
                    'Close the quote; a quote inside a quoted field is written twice ("").'
                ) from None
            return  # other irregularities (a stray quote inside a field) pandas reads; leave them to it
    if header is None:
        raise TunelabError(f"The {split} file '{path}' holds only blank lines.")
    if len(header) == 1 and _guess_delimiter(path, delimiter):
        raise TunelabError(
            f"{path}:1: the header {header} is a single column when split at {delimiter!r}. "
            f"{_delimiter_hint(path, delimiter)}"
        )
    if rows == 0:
        raise TunelabError(f"The {split} file '{path}' has a header {header} but no rows.")


def check_json(split: str, path: Path) -> None:
    """JSON Lines (one object per line), or one JSON array of objects."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read(1 << 10).lstrip()
    if text.startswith("["):  # one document: json reports the line and column of the first error
        try:
            with open(path, encoding="utf-8-sig") as f:
                rows = json.load(f)
        except json.JSONDecodeError as err:
            raise TunelabError(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno}).") from None
        if not rows:
            raise TunelabError(f"The {split} file '{path}' is an empty JSON array: no rows.")
        bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
        if bad is not None:
            raise TunelabError(
                f"{path}: item {bad} of the array is a {type(rows[bad]).__name__}, not an object {{...}}."
            )
        return
    rows = 0
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TunelabError(
                    f"{path}:{n}: not valid JSON ({err.msg}, column {err.colno}). Each line of a "
                    "JSON Lines file is one complete object."
                ) from None
            if not isinstance(row, dict):
                raise TunelabError(f"{path}:{n}: a JSON {type(row).__name__}, not an object {{...}}.")
            rows += 1
    if rows == 0:
        raise TunelabError(f"The {split} file '{path}' holds only blank lines.")


def root_cause(err: BaseException) -> str:
    """The innermost error of a chain ("An error occurred while generating the dataset" wraps the real one)."""
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return f"{type(seen[-1]).__name__}: {str(seen[-1])[:500]}"


def check_labels(raw, task, source, name: str) -> None:
    """Every row has a label, named by its row in the source (before any split is carved or sampled);
    a validation/test file without the label column is named as such."""
    if "label" not in task.required_columns or not isinstance(source, str):
        return
    for split, ds in raw.items():
        if "label" not in ds.column_names:
            continue
        values = ds["label"]
        empty = [i for i, v in enumerate(values) if v is None or (isinstance(v, str) and not v.strip())]
        if not empty:
            continue
        if split != "train" and len(empty) == len(values):  # datasets fills a column the file lacks with None
            raise TunelabError(
                f"The {split} split of '{name}' has no labels (column '{source}' is missing or empty in every row): "
                f"tunelab scores the {split} split against its labels. Add the column to the {split} data, or leave "
                f"data.loader.{split} unset to carve the {split} split from train."
            )
        raise TunelabError(
            f"The {split} split of '{name}' has no label in row {empty[0] + 1} (column '{source}', rows counted from 1 "
            f"after any header){f' and {len(empty) - 1} more rows' if len(empty) > 1 else ''}. "
            "Fill in those labels or drop the rows."
        )


def check_unique_ids(ds, split: str, name: str) -> None:
    """ids name predictions and answers (QA): two rows must not share one."""
    from collections import Counter

    if "id" not in ds.column_names:
        return
    dupes = [value for value, n in Counter(ds["id"]).items() if n > 1]
    if dupes:
        raise TunelabError(
            f"The {split} split of '{name}' has duplicate ids {sorted(set(map(str, dupes)))[:5]} "
            f"({len(dupes)} ids repeat). Make the id column unique, or switch it off with data.columns.id=false."
        )
