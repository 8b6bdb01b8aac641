"""Task batches on a tiny model, a loss that must fall, SWAG-style files, composing configs."""

from __future__ import annotations

import csv
import random

import datasets
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from tunelab.config import config_dir
from tunelab.model.backbone import load_tokenizer
from tunelab.model.module import TuneModule


def task_batch(task, tokenizer, rows):
    features = task.preprocess({k: [r[k] for r in rows] for k in rows[0]}, tokenizer, 32)
    items = [{k: features[k][i] for k in features} for i in range(len(rows))]
    return task.collate(tokenizer)(items)


def loss_falls(backbone, task, rows, steps=60):
    torch.manual_seed(0)  # head init and dropout: independent of what earlier tests left in the global RNG
    tokenizer = load_tokenizer(backbone)
    task.setup(tokenizer, task.labels_from(datasets.Dataset.from_list(rows)))
    batch = task_batch(task, tokenizer, rows)
    module = TuneModule(backbone, task)
    opt = torch.optim.AdamW(module.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = task.loss(task.forward(module.model, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, module, batch


def load_tokenizer_stub():
    from tunelab.assets import asset_path

    return load_tokenizer(str(asset_path("minilm")))


def swag_csv(path, n=64):
    """SWAG's layout (sent1, sent2, ending0..3, label) with a pattern a tiny model can find."""
    rng = random.Random(0)
    subjects = ["The man", "A woman", "The child", "Someone", "The dog", "A chef"]
    right = ["is happy", "smiles", "laughs"]
    wrong = ["explodes loudly", "turns into glass", "melts the moon", "eats a car", "becomes a cloud"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sent1", "sent2", "ending0", "ending1", "ending2", "ending3", "label"])
        for i in range(n):
            subject = subjects[i % len(subjects)]
            endings = rng.sample(wrong, 3)
            label = rng.randrange(4)
            endings.insert(label, rng.choice(right))
            w.writerow([f"{subject} gets a present.", subject, *[e + "." for e in endings], label])
    return path


# data=files: every task's columns are keys of data.columns (no '+')
SWAG_COLUMNS = (
    "data.columns.text=sent1",
    "data.columns.question=sent2",
    "data.columns.choices=[ending0,ending1,ending2,ending3]",
)


CONF = config_dir()


def compose_config(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=["paths.output_dir=/tmp/tunelab-compose", *overrides])
