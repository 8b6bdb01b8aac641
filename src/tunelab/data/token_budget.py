"""Token-budget batches (``data.max_tokens``): each training batch pads to at most ``max_tokens`` tokens.

A batch pads to its longest row, so its cost is ``rows x longest``; a fixed batch size wastes memory on
short rows and runs out of it on long ones. Here the rows of an epoch are shuffled, cut into mega-batches
and sorted by length inside each (as ``samplers.LengthGroupedSampler`` does), then packed greedily: a
batch takes rows, longest first, while ``rows x longest <= max_tokens``. A row longer than the budget
gets a batch of its own (a warning says how many).

The number of batches is the same in every epoch, so ``len()`` is exact before the epoch starts: Lightning
reads it once (``num_training_batches``, ``estimated_stepping_batches``, hence the learning-rate schedule
and ``accumulate_grad_batches``) and ends the epoch after that many batches. Packing a shuffled order
gives a few more or fewer batches from one epoch to the next, so the count is fixed at the most that
epochs 0-7 need, and an epoch that packs into fewer has its largest batches split in two (each half is
within the budget). An epoch that would need more (rare) is packed from all rows sorted by length (ties
shuffled), the fewest batches any packing needs, then split the same way.

Under DDP the batches of an epoch are dealt to the ranks in turn; the count is first rounded up to a
multiple of the world size, by the same splitting, so every rank gets the same number of batches (no rank
waits at the epoch end) and every row is trained exactly once per epoch across the ranks: none repeated,
none dropped. Rank and world size come from Lightning: the class follows ``BatchSampler``'s interface, and
Lightning, under DDP, re-creates it with a ``DistributedSampler`` as ``sampler``; only its ``rank`` and
``num_replicas`` are read.

The order is a pure function of (seed, epoch) (``set_epoch``), so a run resumed mid-epoch rebuilds it and
passes over the batches already trained (``samplers.ResumableLoader``), as for length-grouped batches.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from torch.utils.data import BatchSampler, DistributedSampler

from tunelab.errors import TunelabError

EPOCHS_SIZED = 8  # the batch count is the most that these first epochs' packings need


def checked_max_tokens(value):
    """``data.max_tokens``: None (fixed batch sizes) or a positive integer; anything else is one clear error."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if value is None or (whole and value >= 1):
        return value if value is None else int(value)
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    what = ("is out of range" if whole else "is not a whole number") if number else "is not a number"
    raise TunelabError(
        f"data.max_tokens={value!r} {what}: data.max_tokens is the "
        "most tokens (rows x longest row) a training batch pads to; it must be a positive integer, e.g. "
        "data.max_tokens=4096, or null for fixed batches of data.batch_size."
    )


class TokenBudgetBatchSampler(BatchSampler):
    """Batches of row indices with ``len(batch) * max(lengths[batch]) <= max_tokens`` (a longer row: alone).

    ``rank`` / ``world_size``: this process's share of the batches (simulated DDP in tests); a
    ``DistributedSampler`` passed as ``sampler`` (what Lightning does under DDP) overrides both.
    ``mega_factor``: rows per mega-batch, in rows of a median-length batch (as LengthGroupedSampler's).
    """

    def __init__(
        self,
        lengths,
        max_tokens: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        mega_factor: int = 50,
        sampler=None,
    ):
        # BatchSampler.__init__ is not called: its sampler/batch_size/drop_last do not apply to token budgets
        if isinstance(sampler, DistributedSampler):
            rank, world_size = sampler.rank, sampler.num_replicas
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens = checked_max_tokens(max_tokens)
        self.seed, self.rank, self.world_size, self.epoch = seed, int(rank), int(world_size), 0
        if not 0 <= self.rank < self.world_size:
            raise TunelabError(f"rank {rank} is not one of the {world_size} ranks (0..{world_size - 1}).")
        if len(self.lengths) < self.world_size:
            raise TunelabError(
                f"{len(self.lengths)} training rows cannot make a batch for each of {world_size} ranks: "
                "use fewer devices (trainer.devices) or more data."
            )
        rows_per_batch = max(1, self.max_tokens // max(1, int(np.median(self.lengths))))
        self.mega = rows_per_batch * mega_factor
        over = self.lengths > self.max_tokens
        if over.any():
            warnings.warn(
                f"data.max_tokens={self.max_tokens}: {int(over.sum())} training row(s) are longer than the budget "
                f"(the longest: {int(self.lengths.max())} tokens); each is a batch of one row, over the budget. "
                "Raise data.max_tokens to at least data.max_length to keep every batch within it.",
                stacklevel=2,
            )
        most_needed = max(len(self._pack_mega(e)) for e in range(EPOCHS_SIZED))
        self.num_batches = -(-most_needed // self.world_size) * self.world_size  # over all ranks, per epoch
        if self.num_batches > len(self.lengths):  # (only with fewer rows than ranks x batches: tiny data)
            raise TunelabError(
                f"{len(self.lengths)} training rows cannot fill {self.num_batches} batches, an equal number on each "
                f"of {world_size} ranks: use fewer devices (trainer.devices) or more data."
            )

    @property
    def sampler(self):
        # Lightning calls set_epoch on ``loader.batch_sampler.sampler`` (not on the batch sampler itself)
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches // self.world_size

    def __iter__(self):
        for batch in self.epoch_batches(self.epoch)[self.rank :: self.world_size]:
            yield batch.tolist()

    # ---- an epoch's batches, all ranks together
    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """All ranks' batches of ``epoch`` (``num_batches`` of them), in training order."""
        rng = np.random.default_rng([self.seed, epoch, 1])
        batches = self._pack_mega(epoch)
        if len(batches) > self.num_batches:
            batches = self._pack_sorted(epoch)
        while len(batches) < self.num_batches:  # split the batch with most rows: both halves fit its budget
            i = max(range(len(batches)), key=lambda j: len(batches[j]))
            half = (len(batches[i]) + 1) // 2
            batches[i : i + 1] = [batches[i][:half], batches[i][half:]]
        # the batch with the longest row first: an out-of-memory error shows at step one; the rest shuffled
        longest = int(np.argmax([self.lengths[b].max() for b in batches]))
        rest = [b for i, b in enumerate(batches) if i != longest]
        rng.shuffle(rest)
        return [batches[longest], *rest]

    def _pack_mega(self, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.mega):
            chunk = order[start : start + self.mega]
            batches += self._pack(chunk[np.argsort(-self.lengths[chunk], kind="stable")])
        return batches

    def _pack_sorted(self, epoch: int) -> list[np.ndarray]:
        # all rows longest first, rows of one length in a shuffled order: the fewest batches of any packing
        order = np.random.default_rng([self.seed, epoch, 2]).permutation(len(self.lengths))
        return self._pack(order[np.argsort(-self.lengths[order], kind="stable")])

    def _pack(self, longest_first: np.ndarray) -> list[np.ndarray]:
        # rows sorted longest first: a batch's first row is its longest, so it holds max_tokens // that rows
        batches, i = [], 0
        while i < len(longest_first):
            take = max(1, self.max_tokens // int(self.lengths[longest_first[i]]))
            batches.append(longest_first[i : i + take])
            i += take
        return batches
