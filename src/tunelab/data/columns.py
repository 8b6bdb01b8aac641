"""Which source column feeds which of the task's canonical columns (``data.columns``).

Every data config carries every canonical column (conf/data/common/datamodule.yaml), each ``null``
unless the data config or the command names a source column, so ``data.columns.tokens=words`` works
without Hydra's ``+``. ``null`` means the task's default: a required column is read from the source
column of its own name (``tokens``, ``tags``, ``target`` ...), an optional one only when the source has
a column of that name. ``false`` (or ``""``) switches an optional column off (e.g. a duplicate ``id``).
A column the task does not use may not be named: classification's ``text``/``label`` never leak into
tagging. Every error names the exact override that fixes it.
"""

from __future__ import annotations

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
