"""A training DataLoader that resumes in the middle of an epoch where the saved run stopped.

A preemption save (SIGTERM/SIGUSR1) or an ``every_n_train_steps`` save lands mid-epoch. Lightning
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

import torch
from torch.utils.data import DataLoader


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
