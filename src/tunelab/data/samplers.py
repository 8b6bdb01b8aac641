"""Length-aware sampling: batches of similar lengths waste little compute on padding."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    """Random order, but each run of ``batch_size`` indices has similar lengths.

    Shuffle all indices, cut them into mega-batches of ``batch_size * mega_factor``, sort each
    mega-batch by length (longest first), then shuffle the order of the resulting batches. The
    longest batch goes first so an out-of-memory error shows up at step one, not hours in.
    Call ``set_epoch`` (Lightning does) for a new order each epoch.
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, mega_factor: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.mega = batch_size * mega_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.mega):
            chunk = order[start : start + self.mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        longest = int(np.argmax([self.lengths[b].max() for b in batches]))
        rest = [b for i, b in enumerate(batches) if i != longest]
        rng.shuffle(rest)
        for batch in [batches[longest], *rest]:
            yield from batch.tolist()


class SortedSampler(Sampler[int]):
    """Evaluation order: longest first. Predictions carry ``idx`` to restore input order."""

    def __init__(self, lengths):
        self.order = np.argsort(-np.asarray(lengths), kind="stable").tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)
