"""What `tunelab predict` reads (issue 17, item 5): JSON rows under the training data's own column names, each
task's format in --help and in the errors, QA refusing plain text with the format it needs, and no silent
one-per-line split of a .txt."""

from __future__ import annotations

import io
import json

import pytest

from tunelab.commands.predict import FORMATS, read_rows
from tunelab.errors import TunelabError


def test_jsonl_rows_under_the_training_column_names(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"review": "good film", "extra": 1}) + "\n" + json.dumps({"text": "bad"}) + "\n")
    rows = read_rows(str(path), "classification", {"text": "review", "label": "stars"})
    assert [r["text"] for r in rows] == ["good film", "bad"]


def test_tagging_rows_under_the_training_tokens_column(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"words": ["the", "cat"]}) + "\n")
    assert read_rows(str(path), "tagging", {"tokens": "words", "tags": "pos"})[0]["tokens"] == ["the", "cat"]


def test_wrong_key_names_the_keys_and_the_task_format(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"sentence": "good"}) + "\n")
    with pytest.raises(
        TunelabError,
        match=r"in.jsonl:1 must be an object with the key\(s\) 'text' \(or the training "
        r"data's column names: \['review', 'text'\]\); task=classification takes",
    ):
        read_rows(str(path), "classification", {"text": "review"})


def test_plain_text_into_question_answering_says_the_format(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the capital of France?\n"))
    with pytest.raises(
        TunelabError,
        match=r"task=question_answering predicts from JSON lines \{\"question\": \.\.\., "
        r"\"context\": \.\.\.\} only: plain text lines \(standard input\)",
    ):
        read_rows(None, "question_answering", {})


def test_stdin_json_lines_with_question_and_context(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"question": "Who?", "context": "Ann ran."}) + "\n"))
    [row] = read_rows(None, "question_answering", {})
    assert row["text"] == "Who?" and row["context"] == "Ann ran."


def test_txt_says_one_input_per_line(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("first e-mail line one\nfirst e-mail line two\n\nsecond\n")
    assert len(read_rows(str(path), "classification", {})) == 3
    err = capsys.readouterr().err
    assert "3 inputs from " in err and "a text with line breaks: use .jsonl" in err


def test_help_lists_each_task_format(capsys):
    from tunelab.commands.predict import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for task in FORMATS:
        assert task in out
    assert '{"question": ..., "context": ...}' in out
