"""Length-aware sampling: batches of similar lengths waste little compute on padding.

Why not ``transformers.trainer_pt_utils.LengthGroupedSampler`` (transformers 5.23;
``LengthGroupedSampler(batch_size, dataset=None, lengths=None, model_input_name=None, generator=None)``,
what ``transformers.Trainer`` builds for ``train_sampling_strategy="group_by_length"``). Measured by
``bench/length_grouping.py`` on MR's 3,200 training rows, MiniLM tokens (max_length 128), batch 32,
seeds 1-3 x epochs 0-2 (medians of the 9 epochs; bench/README.md):

    sampler                                 padding   spread  lag-1   pure (seed, epoch) / resumes
    this one                                   2.7%     1.31  -0.05   yes / yes
    transformers' LengthGroupedSampler         4.9%     2.48   0.71   no / no
    its get_length_grouped_indices, x50        2.6%     1.31   0.89   yes / yes (seeded per epoch here)
    random order (no grouping)                48.7%    44.87   0.02

(padding: padded / all tokens of the padded batches; spread: mean longest - shortest row of a batch in
tokens; lag-1: autocorrelation of consecutive batches' mean lengths.) All three groupers give every row
once per epoch, deterministically for a seed, longest batch first. The class is not equal: its mega-batches
hold ``min(rows // (4 * batch_size), 50)`` batches (25 here, not 50), so 1.8x the padding; it has no
``set_epoch`` and draws from torch's global generator (or one passed in that each epoch advances), so
an epoch's order is not a function of (seed, epoch) and ``tunelab.data.resumable`` could not rebuild it
to skip the trained batches of a resumed epoch. Its helper with tunelab's mega-batch factor pads as
little, but runs each mega-batch longest to shortest (lag-1 0.89: the first steps of a mega-batch
train on its longest rows, the last on its shortest) instead of shuffling the batches; a wrapper
that seeds it per epoch and shuffles its batches would replace only the permute-and-sort lines here,
and lean on a helper of the Trainer's internals.
"""

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
