"""Determinism (same seed, deterministic mode: bitwise-identical metrics on CPU) and run metadata."""

from __future__ import annotations

import json

from helpers.runs import quick, read_metrics, train_in_process
from helpers.sweep_probes import read_train_order


def _record_order(path) -> tuple[str, str]:
    return "+callbacks.order._target_=helpers.sweep_probes.RecordTrainOrder", f"+callbacks.order.path={path}"


def test_two_runs_of_one_config_give_bitwise_identical_metrics_and_full_metadata(tiny_backbone, tmp_path):
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        overrides = ("trainer.deterministic=true", "seed=7", "optimizer.lr=1e-3", *_record_order(f"{run}.order"))
        assert train_in_process(*quick(tiny_backbone, run, *overrides)) == 0
    first, second = (read_metrics(r) for r in runs)
    assert first["metrics"] == second["metrics"]  # every float, bit for bit
    assert read_train_order(f"{runs[0]}.order") == read_train_order(f"{runs[1]}.order")  # the same batches
    assert first["metrics"]["val/loss"] != 0

    info = json.loads((runs[0] / "run.json").read_text())
    assert info["status"] == "completed" and info["exit_status"] == 0 and info["ended"] >= info["started"]
    assert info["seed"] == 7 and "seed=7" in info["overrides"]
    assert len(info["git"]["commit"]) == 40 and isinstance(info["git"]["dirty"], bool)
    if info["git"]["dirty"]:
        assert (runs[0] / info["git"]["diff"]).exists()
    assert info["packages"]["torch"] and info["packages"]["lightning"] and info["packages"]["transformers"]
    assert info["platform"]["torch"] and info["platform"]["cpu_count"] >= 1 and "gpus" in info["platform"]
    assert info["data_fingerprint"]["rows"] == {"train": 64, "validation": 32, "test": 32}
    second_info = json.loads((runs[1] / "run.json").read_text())
    assert info["data_fingerprint"]["tokenized"] == second_info["data_fingerprint"]["tokenized"]
    assert "seed: 7" in (runs[0] / "config.yaml").read_text()


def test_another_seed_gives_other_numbers_and_another_data_order(tiny_backbone, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run, seed in ((a, 7), (b, 8)):
        overrides = ("trainer.deterministic=true", f"seed={seed}", "optimizer.lr=1e-3", *_record_order(f"{run}.order"))
        assert train_in_process(*quick(tiny_backbone, run, *overrides)) == 0
    order_a, order_b = read_train_order(f"{a}.order"), read_train_order(f"{b}.order")
    # the same 64 training rows, each once, in 4 batches of 16, but other batches in another order
    assert len(order_a) == len(order_b) == 4 and all(len(batch) == 16 for batch in order_a + order_b)
    assert sorted(sum(order_a, [])) == sorted(sum(order_b, [])) == list(range(64))
    assert order_a[0] != order_b[0] and {frozenset(x) for x in order_a} != {frozenset(x) for x in order_b}
    # and the consequence: other weights, other validation and test numbers
    metrics_a, metrics_b = read_metrics(a)["metrics"], read_metrics(b)["metrics"]
    assert metrics_a["val/loss"] != metrics_b["val/loss"] and metrics_a["test/loss"] != metrics_b["test/loss"]

    # the order alone (data.seed; the weights' initialisation still from seed=7) is b's order and changes the numbers
    c = tmp_path / "c"
    overrides = (
        "trainer.deterministic=true",
        "seed=7",
        "data.seed=8",
        "optimizer.lr=1e-3",
        *_record_order(f"{c}.order"),
    )
    assert train_in_process(*quick(tiny_backbone, c, *overrides)) == 0
    assert read_train_order(f"{c}.order") == order_b
    assert read_metrics(c)["metrics"]["val/loss"] not in (metrics_a["val/loss"], metrics_b["val/loss"])


def test_k_fold_splits_partition_the_data(tiny_backbone):
    from functools import partial

    from tunelab.data import TuneDataModule
    from tunelab.data.sources import builtin
    from tunelab.tasks import SequenceClassification

    tests, trains, validations, sizes = [], [], [], set()
    for fold in range(5):
        data = TuneDataModule(
            loader=partial(builtin, "mr"),
            task=SequenceClassification(),
            tokenizer=tiny_backbone,
            cache=False,
            num_folds=5,
            fold=fold,
            split_ratios=(0.9, 0.1, 0.0),
        )
        raw = data._raw_splits()
        ids = {s: set(raw[s]["text"]) for s in ("train", "validation", "test")}
        assert not (ids["train"] & ids["test"]) and not (ids["validation"] & ids["test"])
        sizes.add(tuple(len(raw[s]) for s in ("train", "validation", "test")))
        tests.append(ids["test"])
        trains.append(frozenset(ids["train"]))
        validations.append(ids["validation"])
    assert sizes == {(2880, 320, 800)}  # 4,000 MR sentences: 800 per fold, 10% of the rest for validation
    assert len(set().union(*tests)) == sum(len(t) for t in tests)  # the test folds are disjoint
    # validation rotates with the test fold (from fold k+1): no two runs train on the same rows
    assert len(set(trains)) == 5 and len(set().union(*validations)) == sum(len(v) for v in validations)


def test_the_data_fingerprint_is_the_same_on_a_cache_miss_and_a_cache_hit(tiny_backbone, tmp_path, monkeypatch):
    from tunelab.assets import cache_dir

    cache = tmp_path / "cache"  # the real assets, an empty tokenization cache
    cache.mkdir()
    for part in ("data", "models"):
        (cache / part).symlink_to(cache_dir() / part)
    monkeypatch.setenv("TUNELAB_CACHE", str(cache))
    runs = [tmp_path / "miss", tmp_path / "hit"]
    for run in runs:
        args = [a for a in quick(tiny_backbone, run, "trainer.max_steps=1") if a != "data.cache=false"]
        assert train_in_process(*args) == 0
        if run.name == "miss":
            built = sorted((cache / "tokenized").glob("*/task_state.json"))
            assert len(built) == 1
            built_at = built[0].stat().st_mtime_ns
    assert built[0].stat().st_mtime_ns == built_at  # the second run read the cache, it did not rebuild it
    miss, hit = (json.loads((r / "run.json").read_text())["data_fingerprint"] for r in runs)
    assert miss == hit and len(miss["tokenized"]) == 16
    assert set(miss["splits"]) == {"train", "validation", "test"} and len(set(miss["splits"].values())) == 3


def test_the_data_fingerprint_changes_with_the_tokenized_content(tiny_backbone, tmp_path):
    runs = {64: tmp_path / "a", 48: tmp_path / "b"}
    for rows, run in runs.items():
        assert (
            train_in_process(
                *quick(
                    tiny_backbone,
                    run,
                    "trainer.max_steps=1",
                    f"data.max_samples={{train: {rows}, validation: 32, test: 32}}",
                )
            )
            == 0
        )
    a, b = (json.loads((r / "run.json").read_text())["data_fingerprint"] for r in runs.values())
    assert a["splits"]["train"] != b["splits"]["train"] and a["splits"]["test"] == b["splits"]["test"]
