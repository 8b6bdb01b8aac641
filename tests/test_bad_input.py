"""Bad input gets one clear message (what, where, how to fix), a non-zero exit and no metrics.json."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, quick, train_in_process


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _cases(tmp):
    good = _write(tmp / "good.csv", "text,label\n" + "".join(f"nice film {i},pos\nbad film {i},neg\n" for i in range(20)))
    return {
        "typo in a config key": (["trainer.max_epoch=2"], r"Could not override 'trainer.max_epoch'.*\+trainer.max_epoch"),
        "unknown group option": (["model=minilmm"], r"Could not find 'model/minilmm'.*minilm"),
        "unknown top-level key": (["learning_rate=1e-3"], r"Could not override 'learning_rate'"),
        "wrong type for lr": (["optimizer.lr=fast"], r"optimizer.lr must be a number, got 'fast'"),
        "negative learning rate": (["optimizer.lr=-1e-5"], r"optimizer.lr=-1e-05 is out of range \(must be > 0"),
        "batch size 0": (["data.batch_size=0"], r"data.batch_size=0 is out of range"),
        "missing required value": (["data=files"], r"Missing mandatory value: data.loader.train"),
        "bad backbone path": (["model.backbone=./no/such/model"], r"Backbone './no/such/model' is neither an existing folder"),
        "hub id while offline": (["model.backbone=bert-base-uncased"], r"HF_HUB_OFFLINE is set"),
        "missing column": (["data=files", f"data.loader.train={good}", "data.columns.text=review"],
                           r"has no column 'review'.*Its columns are \['text', 'label'\]"),
        "unknown label in test": (["data=files", f"data.loader.train={good}",
                                   f"data.loader.test={_write(tmp / 'test.csv', 'text,label' + chr(10) + 'meh,neutral' + chr(10))}"],
                                  r"test split.*Unknown label 'neutral'"),
        "missing file": (["data=files", f"data.loader.train={tmp / 'nope.csv'}"], r"train file '.*nope.csv' does not exist"),
        "empty split": (["data.max_samples.test=0"], r"test split of 'mr' is empty"),
        "unknown built-in dataset": (["data.loader.name=mrr"], r"Unknown built-in dataset 'mrr'. Did you mean 'mr'\?"),
    }


@pytest.fixture
def cases(tmp_path):
    found = _cases(tmp_path)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    found["unreadable file"] = (["data=files", f"data.loader.train={latin}"], r"is not UTF-8 text.*iconv")
    return found


CASE_NAMES = [
    "typo in a config key", "unknown group option", "unknown top-level key", "wrong type for lr", "negative learning rate",
    "batch size 0", "missing required value", "bad backbone path", "hub id while offline", "missing column",
    "unknown label in test", "unreadable file", "missing file", "empty split", "unknown built-in dataset"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_clear_message(name, cases, tiny_backbone, tmp_path, capsys):
    overrides, message = cases[name]
    run = tmp_path / "run"
    backbone = [] if any(o.startswith(("model.backbone", "model=")) for o in overrides) else [f"model.backbone={tiny_backbone}"]
    base = [o for o in quick(tiny_backbone, run) if not o.startswith(("model.backbone", "data.max_samples"))]
    code = train_in_process(*base, *backbone, *overrides)
    err = capsys.readouterr().err
    assert code != 0
    import re

    assert re.search(message, err, re.S), err[-2000:]
    assert "Traceback" not in err
    assert not (run / "metrics.json").exists()


def test_the_real_command_exits_non_zero_without_a_traceback(tmp_path):
    env = {**os.environ, "TUNELAB_OUTPUTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "tunelab", "train", "model.backbone=/no/such/dir", "print_config=false"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode != 0
    assert "Backbone '/no/such/dir' is neither an existing folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("runs/*/metrics.json"))
    failed = list(tmp_path.glob("runs/*/run.json"))
    assert len(failed) == 1 and '"status": "failed"' in failed[0].read_text()


def test_unknown_command_suggests_the_right_one():
    proc = subprocess.run([sys.executable, "-m", "tunelab", "trian"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Did you mean 'train'?" in proc.stderr
