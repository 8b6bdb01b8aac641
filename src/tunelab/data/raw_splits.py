"""A data source's raw rows as tunelab's splits: train / validation / test with canonical columns.

    loader()  ->  source_splits mapping  ->  rename columns (data.columns onto the task's)
              ->  label checks  ->  missing splits carved out of train (or a k-fold split)
              ->  max_samples subsets  ->  an ``idx`` column per split

``TuneDataModule`` (tunelab/data/datamodule.py) calls ``raw_splits`` once per build; nothing here
tokenizes or learns labels.

Columns (``data.columns``): every data config carries every canonical column
(conf/data/common/datamodule.yaml), each ``null`` unless the data config or the command names a source
column, so ``data.columns.tokens=words`` works without Hydra's ``+``. ``null`` means the task's default: a
required column is read from the source column of its own name (``tokens``, ``tags``, ``target`` ...), an
optional one only when the source has a column of that name. ``false`` (or ``""``) switches an optional
column off (e.g. a duplicate ``id``). A column the task does not use may not be named: classification's
``text``/``label`` never leak into tagging. Every error names the exact override that fixes it.

Splits a source does not have are carved from its train split (seeded); ``kfold`` gives k-fold
cross-validation.
"""

from __future__ import annotations

import numpy as np

from tunelab.data.checks import check_labels
from tunelab.errors import TunelabError, did_you_mean

# list-valued canonical columns: a suggestion for them prefers a list-valued source column
LIST_COLUMNS = {"tokens", "tags", "choices"}


def task_label(task) -> str:
    """The ``task=`` choice a user typed, from the task object (errors speak the user's words)."""
    name = getattr(task, "name", type(task).__name__)
    if name == "token_classification" and getattr(task, "scheme", None) == "tags":
        return "tagging"
    if name == "sequence_classification":
        return "multilabel" if getattr(task, "multi_label", False) else "classification"
    return name


def task_columns(task) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(task.required_columns), tuple(task.optional_columns)


def _off(src) -> bool:
    return src is False or src == ""


def check_names(columns: dict, task) -> None:
    """No column the task does not use is set (before any file is read)."""
    required, optional = task_columns(task)
    known = (*required, *optional)
    label = task_label(task)
    for canon, src in columns.items():
        if src is None or _off(src) or canon in known:
            continue
        raise TunelabError(
            f"data.columns.{canon}={src}: task={label} has no '{canon}' column (it reads "
            f"{', '.join(f'data.columns.{c}' for c in required)}"
            f"{''.join(f', optionally data.columns.{c}' for c in optional)}). Drop it with data.columns.{canon}=null"
            f"{f', and name the source column of {required[0]!r} with data.columns.{required[0]}=<column>' if required else ''}."
        )
    for canon in required:
        if _off(columns.get(canon)):
            raise TunelabError(
                f"data.columns.{canon} is switched off, but task={label} needs it. "
                f"Set data.columns.{canon}=<source column> (or null for the column named '{canon}')."
            )


def resolve(columns: dict, task, available: list[str]) -> dict:
    """``{canonical: source}`` for the columns this task reads from a source with columns ``available``."""
    check_names(columns, task)
    required, optional = task_columns(task)
    mapping = {}
    for canon in (*required, *optional):
        src = columns.get(canon)
        if _off(src):
            continue
        if src is None:
            if canon in required or canon in available:
                mapping[canon] = canon
            continue
        mapping[canon] = src
    return mapping


def _is_list(features, column: str) -> bool:
    feature = features.get(column) if features is not None else None
    return type(feature).__name__ in ("List", "Sequence", "LargeList") or isinstance(feature, list)


def suggest(canon: str, mapping: dict, ds) -> str:
    """The most likely source column for ``canon``: not mapped already, list-valued for list columns,
    nearest by name."""
    used = {s for src in mapping.values() for s in (src if isinstance(src, list) else [src])}
    free = [c for c in ds.column_names if c not in used] or list(ds.column_names)
    fitting = [c for c in free if _is_list(ds.features, c) == (canon in LIST_COLUMNS)] or free
    hint = did_you_mean(canon, fitting)
    near = hint.split("'")[1] if "'" in hint else None
    return near if near in fitting else fitting[0]


def missing_column_error(split: str, name: str, task, canon: str, src, mapping: dict, ds) -> TunelabError:
    default = src == canon
    how = f"by default from a column named '{canon}'" if default else f"from data.columns.{canon}={src}"
    return TunelabError(
        f"The {split} split of '{name}' has no column {src!r} (task={task_label(task)} reads its '{canon}' "
        f"{how}; data.columns maps { {c: s for c, s in mapping.items()} }). Its columns are {ds.column_names}. "
        f"Set data.columns.<name>=<one of those>: here data.columns.{canon}={suggest(canon, mapping, ds)}."
    )


# -- splits --------------------------------------------------------------

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


# -- the raw splits of a data module --------------------------------------


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
