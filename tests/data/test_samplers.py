"""Length-grouped sampling (tunelab/data/samplers.py): less padding, every row once, an order per (seed, epoch)."""

from __future__ import annotations

import numpy as np

from tunelab.data.samplers import LengthGroupedSampler


def test_length_grouping_cuts_padding_and_visits_every_row_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=1000)
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    batches = [order[i : i + 16] for i in range(0, 1000, 16)]
    grouped_pad = sum(max(lengths[b]) * len(b) - sum(lengths[b]) for b in batches)
    random_order = rng.permutation(1000)
    random_pad = sum(
        max(lengths[random_order[i : i + 16]]) * 16 - sum(lengths[random_order[i : i + 16]]) for i in range(0, 1000, 16)
    )
    assert grouped_pad < 0.5 * random_pad
    assert max(lengths[batches[0]]) == lengths.max()  # longest batch first: OOM shows at step one
    sampler.set_epoch(1)
    assert list(sampler) != order
    # an epoch's order is a function of (seed, epoch) alone: a resumed run rebuilds it (data/samplers.py, ResumableLoader)
    fresh = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    fresh.set_epoch(1)
    assert list(fresh) == list(sampler)
