"""A fingerprint of the tokenized splits that depends on their content only.

datasets' own ``_fingerprint`` hashes the chain of transforms that produced a dataset, so the same
tokens get one value when freshly tokenized and another when read back from the cache. run.json
needs a value two runs can compare: this one hashes the columns themselves (names, types, values,
row boundaries), the same on a cache hit and a miss.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa


def _update(digest, array: pa.Array) -> None:
    digest.update(str(array.type).encode())
    if array.null_count:
        digest.update(array.is_null().to_numpy(zero_copy_only=False).tobytes())
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        digest.update(array.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype("int64").tobytes())
        _update(digest, array.flatten())
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_struct(array.type):
        digest.update(repr(array.to_pylist()).encode())
    else:
        digest.update(array.to_numpy(zero_copy_only=False).tobytes())


def content_hash(dataset) -> str:
    """sha256 over a ``datasets.Dataset``'s columns as stored (independent of chunking and caching)."""
    table = dataset.data.table if hasattr(dataset.data, "table") else dataset.data
    if getattr(dataset, "_indices", None) is not None:  # a select()/shuffle() view: hash the rows it shows
        table = dataset.flatten_indices().data.table
    digest = hashlib.sha256()
    for name in sorted(table.column_names):
        digest.update(name.encode())
        _update(digest, table.column(name).combine_chunks())
    return digest.hexdigest()[:16]


def data_fingerprint(splits: dict) -> dict:
    """One hash over every split, each split's own hash, and their row counts (for run.json)."""
    per_split = {name: content_hash(ds) for name, ds in sorted(splits.items())}
    overall = hashlib.sha256(repr(sorted(per_split.items())).encode()).hexdigest()[:16]
    return {"tokenized": overall, "splits": per_split, "rows": {name: len(ds) for name, ds in splits.items()}}
