"""`tunelab reproduce`: medians over seeds, PASS/FAIL against the recorded value, and a smoke run for CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.runs import ROOT
from tunelab.commands.reproduce import main, reproduce, verdict
from tunelab.errors import TunelabError

EXPECTED = {"metric": "test/accuracy", "value": 0.80, "tolerance": 0.02, "source": "measured here", "seeds": [1, 2, 3]}


def test_verdict_takes_the_median_over_seeds():
    passed = verdict([0.79, 0.95, 0.81], EXPECTED)
    assert passed["median"] == 0.81 and passed["status"] == "PASS"
    assert passed["spread"]["min"] == 0.79 and passed["spread"]["max"] == 0.95
    assert verdict([0.70, 0.75, 0.77], EXPECTED)["status"] == "FAIL"
    assert verdict([0.5], {**EXPECTED, "value": None})["status"] == "NO EXPECTED VALUE"


def test_every_experiment_declares_value_source_tolerance_and_seeds():
    import yaml

    files = sorted((ROOT / "experiments").rglob("*.yaml"))
    assert files
    for path in files:
        expected = yaml.safe_load(path.read_text()).get("expected") or {}
        assert {"metric", "value", "tolerance", "source", "seeds"} <= set(expected), path
        assert expected["source"] and expected["seeds"] and float(expected["tolerance"]) > 0, path


def test_smoke_reproduce_runs_the_whole_path(tiny_backbone, tmp_path, capsys):
    code = main(
        ["experiment=mr_minilm", "--smoke", f"--out={tmp_path}", f"model.backbone={tiny_backbone}", "data.cache=false"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "SMOKE OK" in out and "test/accuracy" in out
    summary = json.loads((tmp_path / "reproduce.json").read_text())
    assert summary["seeds"] == [42] and len(summary["values"]) == 1 and 0 <= summary["median"] <= 1
    assert (Path(summary["runs"]) / "seed42" / "metrics.json").exists()


def test_an_unknown_experiment_is_a_clear_error():
    with pytest.raises(TunelabError, match="Cannot compose experiment 'nope'"):
        reproduce("nope", smoke=True)
