"""tunelab's LengthGroupedSampler vs transformers' on MR with MiniLM token lengths (issue 16, item 6).

    python bench/length_grouping.py [--seeds 1 2 3] [--epochs 3] [--batch-size 32] [--max-length 128]

No training: the training split's token lengths (tunelab's tokenized MR, MiniLM tokenizer, truncation at
``--max-length``) are cut into batches by each sampler, and each epoch's batches are counted:

  padding share   padded tokens / tokens in the padded batches (a batch pads to its longest row)
  spread          mean over batches of (longest - shortest row) in tokens
  lag-1 autocorr  of the batches' mean lengths in training order: ~0 when the batch order is random,
                  near 1 when long batches follow long ones (a run of long, then short batches)
  every row once  each epoch is a permutation of the rows
  deterministic   a second sampler with the same seed gives the same order for that epoch
  pure (seed, epoch)  a fresh sampler set to epoch e gives what one that iterated epochs 0..e-1 gives at e:
                  what resuming mid-epoch needs (tunelab/data/samplers.py's ResumableLoader rebuilds it)
  resumes         ResumableLoader(skip_batches=k) on a fresh sampler yields the uninterrupted epoch's
                  batches after k

Arms: ``tunelab`` (tunelab.data.samplers), ``hf_sampler`` (transformers.trainer_pt_utils.LengthGroupedSampler
as transformers.Trainer builds it for training: no generator, torch's global RNG, seeded once like
Lightning's seed_everything), ``hf_sampler_gen`` (the same class with a seeded ``generator``),
``hf_indices_50`` (its ``get_length_grouped_indices`` with tunelab's mega-batch factor, 50, and a
generator seeded by seed + epoch: the thin wrapper a replacement would be), plus two references:
``random`` (a seeded permutation: no grouping) and ``sorted`` (all rows sorted by length: the least
padding possible, no randomness).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch


def mr_lengths(max_length: int, batch_size: int) -> list[int]:
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir, instantiate

    overrides = ["paths.output_dir=.", "model=minilm", "data=mr", f"data.max_length={max_length}"]
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"data.batch_size={batch_size}"])
    dm = instantiate(cfg.data, "data", task=instantiate(cfg.task, "task"))
    dm.task.setup(dm.tokenizer, dm.learn_labels())
    dm.setup("fit")
    return list(dm.splits["train"]["length"])


class Arm:
    """One sampler kind: ``epochs`` iterates one sampler epoch after epoch, ``fresh_at`` builds one at an epoch."""

    def __init__(self, name, build, set_epoch=True):
        self.name, self.build, self.set_epoch = name, build, set_epoch

    def epochs(self, seed: int, n: int) -> list[list[int]]:
        torch.manual_seed(seed)  # what seed_everything does before the first epoch
        sampler = self.build(seed)
        out = []
        for epoch in range(n):
            if self.set_epoch and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)  # Lightning calls it on every epoch
            out.append([int(i) for i in sampler])
        return out

    def fresh_at(self, seed: int, epoch: int):
        torch.manual_seed(seed)
        sampler = self.build(seed)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        return sampler


def arms(lengths: list[int], batch_size: int) -> list[Arm]:
    from transformers.trainer_pt_utils import LengthGroupedSampler as HFSampler
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from tunelab.data.samplers import LengthGroupedSampler

    class HFIndices50(torch.utils.data.Sampler):
        def __init__(self, seed):
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return len(lengths)

        def __iter__(self):
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(lengths, batch_size, mega_batch_mult=50, generator=generator))

    class Permutation(torch.utils.data.Sampler):
        def __init__(self, seed, sort=False):
            self.seed, self.epoch, self.sort = seed, 0, sort

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return len(lengths)

        def __iter__(self):
            if self.sort:
                return iter(np.argsort(-np.asarray(lengths), kind="stable").tolist())
            return iter(np.random.default_rng(self.seed + self.epoch).permutation(len(lengths)).tolist())

    return [
        Arm("tunelab", lambda seed: LengthGroupedSampler(lengths, batch_size, seed=seed)),
        Arm("hf_sampler", lambda seed: HFSampler(batch_size, lengths=lengths)),
        Arm(
            "hf_sampler_gen",
            lambda seed: HFSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(seed)),
        ),
        Arm("hf_indices_50", HFIndices50),
        Arm("random", Permutation),
        Arm("sorted", lambda seed: Permutation(seed, sort=True)),
    ]


def batch_stats(order: list[int], lengths: np.ndarray, batch_size: int) -> dict:
    batches = [lengths[order[i : i + batch_size]] for i in range(0, len(order), batch_size)]
    padded = sum(int(b.max()) * len(b) for b in batches)
    real = sum(int(b.sum()) for b in batches)
    means = np.array([b.mean() for b in batches])
    return {
        "padded_tokens": padded - real,
        "padding_share": (padded - real) / padded,
        "spread": float(np.mean([b.max() - b.min() for b in batches])),
        "lag1": float(np.corrcoef(means[:-1], means[1:])[0, 1]),
        "longest_first": int(batches[0].max()) == int(lengths.max()),
    }


def median(stats: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in stats)


def resumes(arm: Arm, seed: int, epoch: int, skip: int, batch_size: int, n: int) -> bool:
    from tunelab.data.samplers import ResumableLoader

    # the uninterrupted run's sampler has iterated the earlier epochs; the resumed run builds a fresh one
    order = arm.epochs(seed, epoch + 1)[epoch]
    straight = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    resumed = ResumableLoader(
        list(range(n)), batch_size=batch_size, sampler=arm.fresh_at(seed, epoch), skip_batches=skip
    )
    return [b.tolist() for b in resumed] == straight[skip:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()

    lengths = np.asarray(mr_lengths(args.max_length, args.batch_size))
    n, bs = len(lengths), args.batch_size
    print(f"MR train: {n} rows, MiniLM tokens per row: mean {lengths.mean():.1f}, max {lengths.max()}, batch {bs}")
    header = (
        "| arm | padded tokens / epoch | padding share | spread (tokens) | lag-1 autocorr | longest first "
        "| every row once | deterministic | pure (seed, epoch) | resumes mid-epoch |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for arm in arms(lengths.tolist(), bs):
        stats, once, same, pure, resumed = [], True, True, True, True
        for seed in args.seeds:
            orders = arm.epochs(seed, args.epochs)
            again = arm.epochs(seed, args.epochs)
            for epoch, order in enumerate(orders):
                stats.append(batch_stats(order, lengths, bs))
                once &= sorted(order) == list(range(n))
                same &= order == again[epoch]
                pure &= list(arm.fresh_at(seed, epoch)) == order
            resumed &= resumes(arm, seed, epoch=1, skip=37, batch_size=bs, n=n)

        pads = [s["padded_tokens"] for s in stats]
        yes = {True: "yes", False: "no"}
        print(
            f"| {arm.name} | {median(stats, 'padded_tokens'):,.0f} ({min(pads):,}-{max(pads):,}) "
            f"| {median(stats, 'padding_share'):.1%} | {median(stats, 'spread'):.2f} | {median(stats, 'lag1'):.2f} "
            f"| {sum(s['longest_first'] for s in stats)}/{len(stats)} | {yes[once]} | {yes[same]} | {yes[pure]} "
            f"| {yes[resumed]} |"
        )
    print(f"\n{len(args.seeds)} seeds x {args.epochs} epochs; medians over the {len(args.seeds) * args.epochs} epochs.")


if __name__ == "__main__":
    main()
