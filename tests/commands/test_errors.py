"""Mistakes around the other commands (export, predict, assets) and debug=fast_dev_run runs: one clear
message and a non-zero exit, no traceback, nothing half-written.

Tests run as root, for whom a chmod'ed folder stays writable; a place that cannot be written is a path
through a file (``<file>/sub``), which fails the same real write-and-delete check a read-only mount does.
"""

from __future__ import annotations

import json

import lightning  # noqa: F401  (imported before capsys, as in tests/test_errors.py)
import pytest

from helpers.runs import quick, train_in_process
from tunelab.cli import main


@pytest.fixture(scope="module")
def runs(tiny_backbone, tmp_path_factory):
    """Two runs under one outputs/runs: a finished one, then (newer) a debug=fast_dev_run one."""
    root = tmp_path_factory.mktemp("outputs")
    full, smoke = root / "runs" / "full", root / "runs" / "smoke"
    assert train_in_process(*quick(tiny_backbone, full)) == 0
    assert train_in_process(*quick(tiny_backbone, smoke, "debug=fast_dev_run")) == 0
    return root, full, smoke


def _fails(capsys, argv, message):
    import re

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert re.search(message, err, re.S), err[-2000:]
    assert "Traceback" not in err


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_export_out_that_cannot_be_written(where, runs, a_file, capsys):
    out = a_file if where == "a file" else a_file / "model"
    message = (
        r"--out .*a-file is a file, not a folder"
        if where == "a file"
        else r"Cannot write the export folder --out '.*a-file/model': .*a-file is a file, not a folder. Choose a writable"
    )
    _fails(capsys, ["export", str(runs[1]), "--out", str(out)], message)
    assert a_file.read_text() == "not a folder"


def test_export_force_deletes_an_earlier_exports_model_files(runs, tmp_path):
    """A leftover adapter_config.json made pipeline() load the merged export as an adapter and fail."""
    from transformers import pipeline

    out = tmp_path / "model"
    out.mkdir()
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "/gone"}))
    (out / "pytorch_model.bin").write_bytes(b"stale weights")
    (out / "notes.txt").write_text("mine")
    assert main(["export", str(runs[1]), "--out", str(out)]) == 2  # non-empty: refused without --force
    assert main(["export", str(runs[1]), "--out", str(out), "--force"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "adapter_config.json" not in names and "pytorch_model.bin" not in names
    assert {"config.json", "model.safetensors", "notes.txt"} <= names  # the user's own file stays
    labels = json.loads((out / "config.json").read_text())["id2label"].values()
    assert pipeline("text-classification", model=str(out))("a fine film")[0]["label"] in labels


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_predict_output_that_cannot_be_written(where, runs, a_file, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("a fine film\n")
    out, message = (
        (tmp_path, r"--output .* is a folder. Give a file name")
        if where == "a folder"
        else (
            a_file / "predictions.jsonl",
            r"Cannot write the predictions \(--output\) into '.*a-file': .*a-file is a file, not a folder",
        )
    )
    _fails(capsys, ["predict", str(runs[1]), "--input", str(texts), "--output", str(out)], message)


def test_a_fast_dev_run_run_is_not_a_finished_run(runs, tmp_path, capsys, monkeypatch):
    from tunelab.sweeps.compare import collect

    root, full, smoke = runs
    texts = tmp_path / "texts.txt"
    texts.write_text("a fine film\na dull film\n")
    assert json.loads((smoke / "run.json").read_text())["fast_dev_run"] is True
    _fails(
        capsys,
        ["predict", str(smoke), "--input", str(texts)],
        r"is a debug=fast_dev_run run \(one batch per split, no checkpoint\)",
    )
    _fails(capsys, ["export", str(smoke), "--out", str(tmp_path / "never")], r"is a debug=fast_dev_run run")
    assert not (tmp_path / "never").exists()
    monkeypatch.setenv("TUNELAB_OUTPUTS", str(root))  # latest: the newest run that is not a fast_dev_run
    assert main(["predict", "latest", "--input", str(texts), "--output", str(tmp_path / "p.jsonl")]) == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2
    from tunelab.run.record import resolve_run_dir

    assert resolve_run_dir("latest") == full
    assert {r.path.name: r.status for r in collect([str(root / "runs")])} == {
        "full": "completed",
        "smoke": "fast_dev_run",
    }


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_assets_with_a_cache_that_cannot_be_written(where, a_file, capsys, monkeypatch):
    cache = a_file if where == "a file" else a_file / "cache"
    monkeypatch.setenv("TUNELAB_CACHE", str(cache))
    _fails(
        capsys,
        ["assets", "minilm"],
        r"Cannot write the asset cache '.*': .*a-file is a file, not a folder. Set TUNELAB_CACHE",
    )
    assert a_file.read_text() == "not a folder"
