"""The tokenized cache (tunelab/data/tokenized_cache.py) under concurrency: one key, two builders, one entry."""

from __future__ import annotations

_BUILDER = """
import json, sys, time
from functools import partial
from pathlib import Path
from tunelab.data import TuneDataModule
from tunelab.data.sources import files
from tunelab.tasks import SequenceClassification

data, backbone, me, other = sys.argv[1:5]
dm = TuneDataModule(loader=partial(files, data), task=SequenceClassification(), tokenizer=backbone)
dm.cache_key()  # the tokenizer loads before the barrier: both processes reach prepare_data together
Path(me).touch()
while not Path(other).exists():
    time.sleep(0.005)
dm.task.setup(dm.tokenizer, dm.learn_labels())
dm.setup()
print(json.dumps({"from_cache": getattr(dm, "tokenized_from_cache", False), "labels": dm.task.labels,
                  "train": dm.splits["train"]["input_ids"][:4], "key": dm.cache_key()}))
"""


def test_two_processes_building_one_cache_key_build_it_once(tiny_backbone, tmp_path):
    """Two jobs tokenizing the same data at the same moment: one builds, the other waits on the key's lock and
    reads the finished entry (without the lock both build, and one's rmtree-then-rename races the other's)."""
    import json
    import os
    import subprocess
    import sys

    data = tmp_path / "reviews.csv"
    data.write_text(
        "text,label\n" + "".join(f"a fine film number {i},pos\na dull film number {i},neg\n" for i in range(200))
    )
    env = {**os.environ, "TUNELAB_CACHE": str(tmp_path / "cache")}
    ready = [tmp_path / "ready-0", tmp_path / "ready-1"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILDER, str(data), tiny_backbone, str(ready[i]), str(ready[1 - i])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(r["from_cache"] for r in results) == [False, True]  # built once, read once
    assert results[0]["train"] == results[1]["train"] and results[0]["labels"] == results[1]["labels"] == ["neg", "pos"]
    entries = sorted(p.name for p in (tmp_path / "cache" / "tokenized").iterdir())
    assert entries == [results[0]["key"], results[0]["key"] + ".lock"]  # one entry, no half-written .tmp- folder
    assert (tmp_path / "cache" / "tokenized" / results[0]["key"] / "task_state.json").exists()
