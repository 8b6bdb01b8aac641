"""CoNLL-style token-per-line files (``.conll``, ``.conllu``, ``.iob``) -> rows of ``tokens`` + ``tags``.

One token per line, its columns separated by a tab or by spaces; a blank line ends a sentence;
``-DOCSTART-`` lines (CoNLL-2003) and ``#`` comment lines (CoNLL-U) are skipped, as are CoNLL-U's
multi-word ranges (``1-2``) and empty nodes (``1.1``). The word is column ``token_column`` and the
tag column ``tag_column`` (0-based, negative counts from the end); by default the first and last
column, for CoNLL-U the FORM (1) and UPOS (3) columns.

Hand-written: ``datasets`` has no CoNLL builder (the CoNLL-2003 Hub dataset ships its own script),
and its csv builder cannot group lines into sentences.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import TunelabError

SUFFIXES = (".conll", ".conllu", ".iob")


def default_columns(path: Path) -> tuple[int, int]:
    return (1, 3) if path.suffix.lower() == ".conllu" else (0, -1)


def read(
    split: str, path: Path, token_column: int | None = None, tag_column: int | None = None, delimiter: str | None = None
) -> dict:
    """``{"tokens": [[...], ...], "tags": [[...], ...]}`` of one file; errors name file:line and the fix."""
    tok_default, tag_default = default_columns(path)
    tok = tok_default if token_column is None else int(token_column)
    tag = tag_default if tag_column is None else int(tag_column)
    conllu = path.suffix.lower() == ".conllu"
    tokens, tags, words, labels = [], [], [], []

    def close():
        nonlocal words, labels
        if words:
            tokens.append(words)
            tags.append(labels)
        words, labels = [], []

    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                close()
                continue
            if line.startswith("-DOCSTART-") or (conllu and line.startswith("#")):
                continue
            cells = line.split(delimiter) if delimiter else (line.split("\t") if "\t" in line else line.split())
            cells = [c.strip() for c in cells]
            if conllu and ("-" in cells[0] or "." in cells[0]):
                continue
            for what, index, key in (("word", tok, "token_column"), ("tag", tag, "tag_column")):
                if not -len(cells) <= index < len(cells):
                    raise TunelabError(
                        f"{path}:{n}: {len(cells)} column(s) {cells[:6]}, no {what} column {index} "
                        f"(data.loader.{key}={index}). Set data.loader.{key}=<0-based index, -1 for the last>"
                        f"{'' if delimiter else ', or data.loader.delimiter if the columns are not tab/space separated'}."
                    )
            words.append(cells[tok])
            labels.append(cells[tag])
    close()
    if not tokens:
        raise TunelabError(f"The {split} file '{path}' holds no sentence (only blank, comment or -DOCSTART- lines).")
    return {"tokens": tokens, "tags": tags}
