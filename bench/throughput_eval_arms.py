"""The evaluation-side arms of bench/throughput.py: prediction throughput against transformers.pipeline,
and a second data set-up in the same cache. Run through ``python bench/throughput_arms.py predict|cache``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def predict_arm(p: dict) -> None:
    """tunelab's prediction path (predict_rows, as `tunelab predict` runs it) vs transformers.pipeline,
    on the same texts with the same weights (the pretrained backbone plus a seeded random head)."""
    import torch
    from hydra import compose, initialize_config_dir
    from transformers import pipeline

    from tunelab.commands.predict import predict_rows
    from tunelab.config import config_dir, instantiate

    torch.manual_seed(p["seed"])
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"seed={p['seed']}", "paths.output_dir=."])
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    task.setup(datamodule.tokenizer, datamodule.learn_labels())
    datamodule.setup("fit")
    module = instantiate(cfg.model, "model", task=task)
    datamodule.eval_batch_size = p["batch_size"]
    texts = list(datamodule._raw_splits()["test"]["text"])[: p["rows"]]
    rows = [{"text": t} for t in texts]
    folder = Path(p["work_dir"]) / "hf-model"  # the same weights as a plain folder for pipeline()
    module.model.save_pretrained(folder)
    datamodule.tokenizer.save_pretrained(folder)
    pipe = pipeline("text-classification", model=str(folder), device="cpu")
    kwargs = {"truncation": True, "max_length": datamodule.max_length}

    ways = {
        "tunelab": lambda: predict_rows(module, datamodule, rows),
        "pipeline_same_batch": lambda: pipe(texts, batch_size=p["batch_size"], **kwargs),
        "pipeline_default_batch": lambda: pipe(texts, **kwargs),
    }  # pipeline's default: batch_size 1
    outputs, seconds = {}, {name: [] for name in ways}
    for name, way in ways.items():  # warm-up (first-call allocations, lazy inits)
        outputs[name] = way()
    for _ in range(p["repeats"]):  # interleaved
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - started)
    ours, theirs = outputs["tunelab"], outputs["pipeline_same_batch"]
    result = {
        "rows": len(rows),
        "batch_size": p["batch_size"],
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        # same weights: the same label per input and close scores mean the order is the input order
        "labels_match_pipeline": [a["label"] for a in ours] == [b["label"] for b in theirs],
        "max_score_diff": max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs)),
    }
    Path(os.environ["BENCH_RESULT"]).write_text(json.dumps(result))


def cache_arm(p: dict) -> None:
    """Set the data up twice in a fresh cache (the second must tokenize nothing), then once in the real
    cache, whose tokenized splits (and the backbone folder) the other arms read."""
    from hydra import compose, initialize_config_dir

    from tunelab.assets import cache_dir
    from tunelab.config import config_dir, instantiate
    from tunelab.model.backbone import resolve_backbone

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=."])

    def setup():
        task = instantiate(cfg.task, "task")
        calls = []
        real = task.preprocess
        task.preprocess = lambda *a, **k: calls.append(len(a[0]["text"])) or real(*a, **k)  # rows tokenized
        datamodule = instantiate(cfg.data, "data", task=task)
        started = time.perf_counter()
        task.setup(datamodule.tokenizer, datamodule.learn_labels())
        datamodule.setup("fit")
        return datamodule, {
            "seconds": time.perf_counter() - started,
            "rows_tokenized": sum(calls),
            "hit": bool(getattr(datamodule, "tokenized_from_cache", False)),
        }

    real_cache = cache_dir()
    fresh = Path(p["work_dir"]) / "fresh-cache"
    fresh.mkdir(parents=True, exist_ok=True)
    for sub in ("models", "data"):  # the fetched assets stay where they are; only tokenized/ is new
        if not (fresh / sub).exists():
            (fresh / sub).symlink_to(real_cache / sub)
    os.environ["TUNELAB_CACHE"] = str(fresh)
    first_dm, first = setup()
    second_dm, second = setup()
    second["same_tokens"] = first_dm.splits["train"]["input_ids"] == second_dm.splits["train"]["input_ids"]
    del os.environ["TUNELAB_CACHE"]
    datamodule, _ = setup()
    optimizer = cfg.optimizer  # the identical-settings arms give the others tunelab's AdamW implementation
    result = {
        "first": first,
        "second": second,
        "splits_dir": str(datamodule.cache_path / "splits"),
        "adamw_fused": bool(optimizer.get("fused")),
        "adamw_foreach": optimizer.get("foreach"),
        "model_dir": resolve_backbone(cfg.model.backbone),
        "max_length": datamodule.max_length,
        "rows": {s: len(d) for s, d in datamodule.splits.items()},
    }
    Path(os.environ["BENCH_RESULT"]).write_text(json.dumps(result))
