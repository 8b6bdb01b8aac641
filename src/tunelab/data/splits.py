"""Splits a source does not have, carved from its train split (seeded), and k-fold cross-validation."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")


def kfold(pool, num_folds: int, fold: int, ratios, seed: int) -> dict:
    """Cross-validation: fold ``fold`` of ``num_folds`` (seeded by split_seed) is the test split; validation
    is carved by the validation share of split_ratios from the folds after it (fold+1, fold+2, ...,
    in rotation); train is the rest. Rotating means no two folds' runs share a training set and every
    example is trained on equally often across the runs."""
    order = np.random.default_rng(seed).permutation(len(pool))
    folds = np.array_split(order, num_folds)
    test = folds[fold]
    rest = np.concatenate([folds[(fold + j) % num_folds] for j in range(1, num_folds)])
    n_val = int(round(len(rest) * ratios[1] / (ratios[0] + ratios[1])))
    cuts = {"train": rest[n_val:], "validation": rest[:n_val], "test": test}
    return {s: pool.select(np.sort(idx)) for s, idx in cuts.items()}


def carve_missing(raw, ratios, seed: int) -> dict:
    """The splits missing from ``raw`` take their share of split_ratios from train; train keeps the rest."""
    missing = [s for s in SPLITS if s not in raw]
    if not missing:
        return dict(raw)
    pool = raw["train"]
    order = np.random.default_rng(seed).permutation(len(pool))
    share = dict(zip(SPLITS, ratios))
    total = share["train"] + sum(share[s] for s in missing)
    start = 0
    cuts = {}
    for split in missing:
        n = int(round(len(pool) * share[split] / total))
        cuts[split] = order[start : start + n]
        start += n
    cuts["train"] = order[start:]
    return {**raw, **{s: pool.select(np.sort(idx)) for s, idx in cuts.items()}}
