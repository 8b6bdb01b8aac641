"""A sharded checkpoint folder (trainer=fsdp's format) never runs code when tunelab reads it: predict, export
and resume refuse a planted pickle with a clear message, and the payload never runs."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from helpers.runs import quick, train_in_process
from tunelab.cli import main


class Payload:
    """Unpickling this runs `touch MARKER` (os.system): what an attacker would plant."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(folder, how: str, marker) -> None:
    """A sharded checkpoint folder whose `how` part is a pickle that creates `marker` when loaded."""
    import torch.distributed.checkpoint as dcp

    folder.mkdir(parents=True)
    if how == ".metadata":  # torch's reader pickle.loads this file
        (folder / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
        return
    # a well-formed checkpoint (real .metadata, .distcp) ...
    dcp.save(
        {"state_dict": {"w": torch.zeros(2)}, **({"payload": Payload(marker)} if how == "item" else {})},
        checkpoint_id=str(folder),
        no_dist=True,
    )
    if how == "meta.pt":  # ... plus Lightning's extra-state file
        torch.save({"payload": Payload(marker)}, folder / "meta.pt")
    # ("item": a non-tensor item, which torch's load planner reads with torch.load(weights_only=False))


def live(folder, how: str, marker) -> bool:
    """The plant is real: torch's own readers, as Lightning calls them, run it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader

    try:
        if how == ".metadata":
            FileSystemReader(str(folder)).read_metadata()
        elif how == "meta.pt":
            torch.load(folder / "meta.pt", weights_only=False)
        else:
            dcp.load({"state_dict": {"w": torch.zeros(2)}, "payload": None}, checkpoint_id=str(folder), no_dist=True)
    except Exception:  # the payload ran, then the reader choked on what it returned
        pass
    return marker.exists()


@pytest.fixture(scope="module")
def finished_run(tiny_backbone, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert train_in_process(*quick(tiny_backbone, run)) == 0
    return run


@pytest.mark.parametrize("how", [".metadata", "item", "meta.pt"])
def test_predict_export_and_resume_refuse_a_planted_sharded_checkpoint(
    how, finished_run, tiny_backbone, tmp_path, capsys
):
    run = tmp_path / "copied-run"  # a run folder copied from a shared file system
    shutil.copytree(finished_run, run)
    marker = tmp_path / "MARKER"
    folder = run / "checkpoints" / "best.ckpt"
    (run / "checkpoints" / "best.ckpt").unlink()
    plant(folder, how, marker)
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["best_checkpoint"] == "checkpoints/best.ckpt"
    texts = tmp_path / "texts.txt"
    texts.write_text("a fine film\n")
    refused = ".metadata" if how == ".metadata" else "meta.pt" if how == "meta.pt" else "item payload"
    named = "posix.system"  # the refused class, as the file names it

    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(texts)]) != 0
    assert main(["export", str(run), "--out", str(tmp_path / "export")]) != 0
    code = train_in_process(*quick(tiny_backbone, tmp_path / "resumed"), f"ckpt_path={folder}")
    assert code != 0
    assert not marker.exists()
    err = capsys.readouterr().err
    assert err.count(f"error: Refused to load {folder}") == 2, err  # predict and export: one clear line each
    assert err.count(named) >= 2 and refused in err and "Traceback" not in err, err
    record = json.loads((tmp_path / "resumed" / "run.json").read_text())  # the resumed run failed, and says why
    assert record["status"] == "failed" and "Refused to load" in record["error"] and named in record["error"]
    assert not (tmp_path / "resumed" / "metrics.json").exists()

    assert live(folder, how, marker)  # and the plant was real: torch's plain readers run it


def test_the_allow_list_is_what_a_real_sharded_checkpoint_is_made_of(tmp_path):
    """Every class torch writes into .metadata passes; anything else is refused, naming the file and the class."""
    import torch.distributed.checkpoint as dcp

    from tunelab.errors import TunelabError
    from tunelab.run.safe_pickle import load_dcp_metadata

    folder = tmp_path / "ckpt"
    dcp.save(
        {"w": torch.zeros(3, 2, dtype=torch.bfloat16), "step": 3, "groups": [{"lr": 1e-3, "betas": (0.9, 0.99)}]},
        checkpoint_id=str(folder),
        no_dist=True,
    )
    metadata = load_dcp_metadata(folder / ".metadata")
    assert metadata.state_dict_metadata["w"].size == torch.Size([3, 2])
    assert metadata.state_dict_metadata["w"].properties.dtype == torch.bfloat16

    (tmp_path / "evil").write_bytes(pickle.dumps(Payload(tmp_path / "MARKER")))
    with pytest.raises(TunelabError, match=r"Refused to load .*evil: it asks to import posix\.system"):
        load_dcp_metadata(tmp_path / "evil")
    (tmp_path / "other").write_bytes(pickle.dumps(shutil.copy))  # a plain function is no metadata either
    with pytest.raises(TunelabError, match=r"shutil\.copy"):
        load_dcp_metadata(tmp_path / "other")
    assert not (tmp_path / "MARKER").exists()
