"""Bad input gets one clear message (what, where, how to fix), a non-zero exit and no metrics.json."""

from __future__ import annotations

import os
import subprocess
import sys

# Imported here, not first inside a capsys test: Lightning's log handler keeps the stderr it finds
# at import time, and a closed capsys stream would print logging tracebacks in later tests.
import lightning  # noqa: F401
import pytest

from helpers.bad_inputs import BEFORE_THE_RUN, CASE_NAMES, config_and_data_cases, model_cases, write_file
from helpers.errors import assert_one_clear_message
from helpers.runs import ROOT, quick, train_in_process


@pytest.fixture
def cases(tmp_path, tiny_backbone):
    found = config_and_data_cases(tmp_path)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    found["unreadable file"] = (["data=files", f"data.loader.train={latin}"], r"is not UTF-8 text.*iconv")
    found.update(model_cases(tmp_path, tiny_backbone))
    return found


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_clear_message(name, cases, tiny_backbone, tmp_path, capsys, monkeypatch):
    overrides, message = cases[name]
    assert_one_clear_message(
        overrides, message, tiny_backbone, tmp_path / "run", capsys, monkeypatch, run_json=name not in BEFORE_THE_RUN
    )


def test_the_real_command_exits_non_zero_without_a_traceback(tmp_path):
    env = {**os.environ, "TUNELAB_OUTPUTS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "train", "model.backbone=/no/such/dir", "print_config=false"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Backbone '/no/such/dir' is neither an existing folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("runs/*/metrics.json"))
    failed = list(tmp_path.glob("runs/*/run.json"))
    assert len(failed) == 1 and '"status": "failed"' in failed[0].read_text()


def test_unknown_command_suggests_the_right_one():
    proc = subprocess.run([sys.executable, "-m", "tunelab", "trian"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Did you mean 'train'?" in proc.stderr


def test_a_100000_character_text_is_truncated_not_refused(tiny_backbone, tmp_path):
    """A very long row is valid data: it is cut to data.max_length tokens and the run completes."""
    rows = "".join(f"nice film {i},pos\nbad film {i},neg\n" for i in range(16))
    data = write_file(tmp_path / "long.csv", "text,label\n" + "word " * 20_000 + ",pos\n" + rows)
    run = tmp_path / "run"
    overrides = [o for o in quick(tiny_backbone, run) if not o.startswith("data.max_samples")]
    assert train_in_process(*overrides, "data=files", f"data.loader.train={data}", "data.max_length=64") == 0
    assert (run / "metrics.json").exists()
