"""Bad data files through ``tunelab train data=files``: the file, the line and the cause in one message
(datasets alone says "An error occurred while generating the dataset"), a non-zero exit, no traceback,
no metrics.json, the run marked failed in run.json."""

from __future__ import annotations

import os

import lightning  # noqa: F401  (imported before capsys, as in tests/test_errors.py)
import pytest

from helpers.errors import assert_one_clear_message

ROWS = "".join(f"nice film {i},pos\nbad film {i},neg\n" for i in range(20))


def _third_row(line: str, rows: str = ROWS) -> str:
    """``rows`` with ``line`` as its third row (line 4 of a file with a header)."""
    kept = rows.splitlines(keepends=True)
    return "".join(kept[:2]) + line + "".join(kept[2:])


def _write(path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _cases(tmp):
    good = _write(tmp / "good.csv", "text,label\n" + ROWS)
    fifo = tmp / "pipe.csv"
    os.mkfifo(fifo)
    (tmp / "folder.csv").mkdir()
    late = b"text,label\n" + b"".join(
        b"a long enough row number %d,pos\nanother row %d,neg\n" % (i, i) for i in range(1500)
    )
    assert len(late) > 1 << 16  # the bad byte lies past the first 64 KB that used to be checked
    jsonl = "".join(f'{{"text": "film {i}", "label": "{"pos" if i % 2 else "neg"}"}}\n' for i in range(20))
    return {
        "malformed JSONL line": (
            _write(tmp / "bad.jsonl", _third_row("{text: 1}\n", jsonl)),
            r"bad.jsonl:3: not valid JSON \(Expecting property name enclosed in double quotes, column 2\)",
        ),
        "unterminated CSV quote": (
            _write(tmp / "quote.csv", "text,label\n" + _third_row('"never closed,pos\n')),
            r"quote.csv:4: a quoted field starts on this line and is never closed",
        ),
        "wrong delimiter": (
            _write(tmp / "semi.csv", "text;label\n" + ROWS.replace(",", ";")),
            r"semi.csv:1: the header \['text;label'\] is a single column.*data.loader.delimiter=';'",
        ),
        "more fields than the header": (
            _write(tmp / "tabs.csv", "text\tlabel\n" + "nice, warm film\tpos\n" + ROWS.replace(",", "\t")),
            r"tabs.csv:2: 2 fields, but the header has 1.*data.loader.delimiter='\\t'",
        ),
        "unquoted comma in a text": (
            _write(tmp / "comma.csv", "text,label\n" + _third_row("nice, warm film,pos\n")),
            r"comma.csv:4: 3 fields, but the header has 2 \['text', 'label'\]. A ',' inside a text must be quoted",
        ),
        "bad bytes past 64 KB": (
            _write(tmp / "late.csv", late + "caf\xe9,neg\n".encode("latin-1")),
            r"late.csv' is not UTF-8 text \(.*late.csv:3002, byte 3 of the line: b'\\xe9,ne'\).*iconv",
        ),
        "header-only CSV": (
            _write(tmp / "header.csv", "text,label\n"),
            r"header.csv' has a header \['text', 'label'\] but no rows",
        ),
        "path is a folder": (str(tmp / "folder.csv"), r"folder.csv' is a folder, not a file \(data.loader.train\)"),
        "path is a FIFO": (str(fifo), r"pipe.csv' is not a regular file \(a pipe, socket or device\)"),
        "empty label cell": (
            _write(tmp / "holes.csv", "text,label\n" + _third_row("no label here,\n")),
            r"train split of 'files' has no label in row 3 \(column 'label'",
        ),
        "test file without labels": (
            [good, f"data.loader.test={_write(tmp / 'nolabel.csv', 'text' + chr(10) + 'meh' + chr(10))}"],
            r"test split of 'files' has no labels \(column 'label' is missing or empty in every row\)",
        ),
    }


CASE_NAMES = [
    "malformed JSONL line",
    "unterminated CSV quote",
    "wrong delimiter",
    "more fields than the header",
    "unquoted comma in a text",
    "bad bytes past 64 KB",
    "header-only CSV",
    "path is a folder",
    "path is a FIFO",
    "empty label cell",
    "test file without labels",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_data_file_is_one_message_with_file_and_line(name, tiny_backbone, tmp_path, capsys, monkeypatch):
    train, message = _cases(tmp_path)[name]
    train, *more = train if isinstance(train, list) else [train]
    assert_one_clear_message(
        ["data=files", f"data.loader.train={train}", *more],
        message,
        tiny_backbone,
        tmp_path / "run",
        capsys,
        monkeypatch,
    )
