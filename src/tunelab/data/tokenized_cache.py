"""The tokenization cache: one folder per key under ``$TUNELAB_CACHE/tokenized/<key>``.

An entry holds ``splits/`` (the tokenized DatasetDict), ``task_state.json`` (the labels the task learnt
from the training split, in its ``state_dict`` form: the features were tokenized with them) and
``data_report.json``. An entry is complete once ``task_state.json`` exists; it is written in a temporary
folder and renamed into place, under a file lock per key, so two jobs of a sweep (or two nodes sharing a
disk) never see half an entry and build it once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

FORMAT = 3  # bump when the cached layout changes (3: task_state.json holds class_label / tag_names too)


def key(recipe: dict) -> str:
    from datasets.fingerprint import Hasher

    return Hasher.hash(json.dumps({"format": FORMAT, **recipe}, sort_keys=True, default=str))


def path_of(cache_key: str) -> Path:
    from tunelab.assets import cache_dir

    return cache_dir() / "tokenized" / cache_key


def complete(path: Path) -> bool:
    return (path / "task_state.json").exists()


def read_labels(path: Path) -> dict:
    return json.loads((path / "task_state.json").read_text())


def read(path: Path):
    """(tokenized splits, data report or {}) of a complete entry."""
    import datasets

    datasets.disable_progress_bars()
    report = path / "data_report.json"
    return datasets.load_from_disk(str(path / "splits")), json.loads(report.read_text()) if report.exists() else {}


def build_once(path: Path, build: Callable, labels: dict):
    """``build()`` -> (splits, data report), written as the entry at ``path`` unless another process wrote it
    first (then None: read it). ``labels``: what the features were tokenized with."""
    from filelock import FileLock

    from tunelab.errors import check_writable

    check_writable(
        path.parent,
        "the tokenization cache",
        "Set TUNELAB_CACHE to a writable folder, or data.cache=false to tokenize without caching.",
    )
    with FileLock(str(path) + ".lock"):
        if complete(path):  # another process built it while this one waited
            return None
        splits, report = build()
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
        try:
            splits.save_to_disk(str(tmp / "splits"))
            (tmp / "data_report.json").write_text(json.dumps(report))
            (tmp / "task_state.json").write_text(json.dumps(labels))
            # only a leftover without task_state.json can be here (a complete entry returned above)
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)  # atomic: a half-written cache is never picked up
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return splits
