"""Training order: length-grouped batches (little compute lost on padding), resumable mid-epoch.

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
an epoch's order is not a function of (seed, epoch) and ``ResumableLoader`` below could not rebuild it
to skip the trained batches of a resumed epoch. Its helper with tunelab's mega-batch factor pads as
little, but runs each mega-batch longest to shortest (lag-1 0.89: the first steps of a mega-batch
train on its longest rows, the last on its shortest) instead of shuffling the batches; a wrapper
that seeds it per epoch and shuffles its batches would replace only the permute-and-sort lines here,
and lean on a helper of the Trainer's internals.

Resuming (``ResumableLoader``): the training loader resumes in the middle of an epoch where the saved run
stopped. A preemption save (SIGTERM/SIGUSR1) or an ``every_n_train_steps`` save lands mid-epoch. Lightning
2.6 restores the loop counters from such a checkpoint but starts the epoch's loader from its first
batch again (it warns "your dataloader is not resumable"), so the resumed run trains on other
batches than an uninterrupted one. The training order here is a pure function of (seed, epoch)
(``LengthGroupedSampler``), so resuming is a matter of skipping the batches already trained:

    TuneDataModule.state_dict()     records how many batches of the current epoch were trained
    TuneDataModule.load_state_dict  keeps that number; Lightning restores the data module before it
                                    asks for the training loader, which gets it as ``skip_batches``
    ResumableLoader.__iter__        skips them once, at the first batch asked for (they are collated, not
                                    trained: cheap next to a step)
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


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


class ResumableLoader(DataLoader):
    def __init__(self, *args, skip_batches: int = 0, **kwargs):
        # an init argument, not an attribute: Lightning rebuilds loaders from their init arguments (DDP)
        super().__init__(*args, **kwargs)
        self.skip_batches = int(skip_batches)

    def __iter__(self):
        skip, self.skip_batches = self.skip_batches, 0  # the resumed epoch only
        if not skip:
            return super().__iter__()
        # Starting an iterator draws a seed from torch's global generator; the uninterrupted run drew it at
        # the epoch's start, before the state the checkpoint restored. Drawing it again would shift every
        # later dropout mask, so the generator is put back as it was.
        rng = torch.get_rng_state()
        iterator = super().__iter__()
        torch.set_rng_state(rng)
        return _after(iterator, skip)

    # Lightning treats a loader with these two methods as resumable (and does not warn); the position
    # itself travels in the data module's state, restored before this loader is built.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _after(iterator, skip: int):
    # lazily, at the first batch asked for: Lightning calls iter() before it sets the sampler's epoch, and
    # the order (hence which batches to pass over) depends on that epoch
    for _ in range(skip):
        next(iterator)
    yield from iterator


def batches_trained_this_epoch(trainer) -> int:
    """Training batches of the current epoch already trained; 0 at an epoch end (the next epoch starts whole)."""
    if trainer is None or not trainer.training:
        return 0
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    total = trainer.num_training_batches
    return 0 if not isinstance(total, int) or done >= total else int(done)


def train_sampling(ds, batch_size: int, seed: int, group_by_length: bool, max_tokens=None, trainer=None) -> dict:
    """The training loader's sampling arguments: token-budget batches (``data.max_tokens``, length-grouped
    whatever ``group_by_length`` says), length-grouped batches, or rows in a seeded random order."""
    if max_tokens is not None:
        from tunelab.data.token_budget import TokenBudgetBatchSampler

        # the rank's share, read from the trainer here; under DDP Lightning re-creates the sampler with the
        # same rank and world size (data/token_budget.py)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        batches = TokenBudgetBatchSampler(ds["length"], max_tokens, seed=seed, rank=rank, world_size=world)
        return {"sampler": None, "batch_size": 1, "batch_sampler": batches}
    if group_by_length:
        return {"sampler": LengthGroupedSampler(ds["length"], batch_size, seed=seed), "batch_size": batch_size}
    return {
        "sampler": torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(seed)),
        "batch_size": batch_size,
    }
