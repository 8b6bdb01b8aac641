"""A data source's raw rows as tunelab's splits: train / validation / test with canonical columns.

    loader()  ->  source_splits mapping  ->  rename columns (data.columns onto the task's)
              ->  label checks  ->  missing splits carved out of train (or a k-fold split)
              ->  max_samples subsets  ->  an ``idx`` column per split

``TuneDataModule`` (tunelab/data/datamodule.py) calls ``raw_splits`` once per build; nothing here
tokenizes or learns labels.
"""

from __future__ import annotations

import numpy as np

from tunelab.data.checks import check_labels
from tunelab.data.splits import SPLITS, carve_missing, kfold
from tunelab.errors import TunelabError


def raw_splits(dm):
    """The raw splits of the data module ``dm``'s source (its loader, columns and split settings); sets
    ``dm.resolved_columns`` (the column mapping with the task's defaults filled in)."""
    import datasets

    try:
        raw = dm.loader()
    except TypeError as err:  # a config key the loader function does not take
        raise TunelabError(f"data.loader of '{dm.name}': {err}. Check the keys under data.loader.") from err
    if isinstance(raw, dict) and not isinstance(raw, datasets.DatasetDict):
        raw = datasets.DatasetDict(raw)
    if isinstance(raw, datasets.Dataset):
        raw = datasets.DatasetDict({"train": raw})
    if dm.source_splits:
        for ours, theirs in dm.source_splits.items():
            if ours not in SPLITS or theirs not in raw:
                raise TunelabError(
                    f"data.source_splits maps '{ours}' to '{theirs}', but tunelab's splits are "
                    f"{list(SPLITS)} and the source has {list(raw)}."
                )
        raw = datasets.DatasetDict({ours: raw[theirs] for ours, theirs in dm.source_splits.items()})
    if "train" not in raw:
        raise TunelabError(f"Data source '{dm.name}' has no 'train' split (it has {list(raw)}).")
    raw = datasets.DatasetDict({k: v for k, v in raw.items() if k in SPLITS})
    raw, dm.resolved_columns = rename_columns(raw, dm.columns, dm.task, dm.name)
    check_labels(raw, dm.task, dm.resolved_columns.get("label"), dm.name)
    return create_missing_splits(raw, dm.split_ratios, dm.split_seed, dm.num_folds, dm.fold, dm.max_samples)


def rename_columns(raw, columns: dict, task, name: str):
    """(splits with the task's canonical columns only, the resolved mapping canonical -> source column(s))."""
    import datasets

    from tunelab.data.columns import missing_column_error, resolve

    wanted = resolve(columns, task, raw["train"].column_names)  # the task's defaults filled in

    def sources(src) -> list[str]:
        return src if isinstance(src, list) else [src]

    out = {}
    for split, ds in raw.items():
        optional = set(task.optional_columns)
        missing = [
            (canon, s)
            for canon, src in wanted.items()
            for s in sources(src)
            if s not in ds.column_names and not (split != "train" and (canon == "label" or canon in optional))
        ]
        if missing:
            raise missing_column_error(split, name, task, *missing[0], wanted, ds)
        present = {src: canon for canon, src in wanted.items() if isinstance(src, str) and src in ds.column_names}
        gathered = {canon: src for canon, src in wanted.items() if isinstance(src, list)}
        if gathered:  # several source columns -> one list column per row
            ds = ds.map(
                lambda b, gathered=gathered: {
                    canon: [list(v) for v in zip(*(b[s] for s in src))] for canon, src in gathered.items()
                },
                batched=True,
            )
        ds = ds.select_columns(list(present) + [c for c in gathered if c not in present])
        ds = ds.rename_columns({s: c for s, c in present.items() if s != c})
        out[split] = ds
    return datasets.DatasetDict(out), wanted


def create_missing_splits(raw, split_ratios, split_seed: int, num_folds: int | None, fold: int, max_samples: dict):
    """Every split in ``SPLITS``: missing ones carved out of train (or fold ``fold`` of ``num_folds``), then
    ``max_samples`` seeded random subsets, and an ``idx`` column (the row's position in its split)."""
    import datasets

    if num_folds:
        raw = kfold(raw["train"], num_folds, fold, split_ratios, split_seed)
    raw = datasets.DatasetDict(carve_missing(raw, split_ratios, split_seed))
    for split, n in max_samples.items():
        if n is not None and split in raw and len(raw[split]) > n:  # a seeded random subset, not the head
            keep = np.sort(np.random.default_rng(split_seed).permutation(len(raw[split]))[: int(n)])
            raw[split] = raw[split].select(keep)
    return datasets.DatasetDict({s: raw[s].add_column("idx", list(range(len(raw[s])))) for s in SPLITS})
