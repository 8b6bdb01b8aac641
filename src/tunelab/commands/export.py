"""``tunelab export RUN --out DIR``: a finished run as a plain Hugging Face folder.

The folder holds config.json (with id2label), model.safetensors, the tokenizer and a model card
(README.md, tunelab/run/model_card.py). The tokenizer's ``model_max_length`` is the trained max length, so
``pipeline(..., truncation=True)`` cuts inputs where training and ``tunelab predict`` did. ``transformers.pipeline(TASK, model=DIR)``
and ``AutoModelFor*.from_pretrained(DIR)`` load it; tunelab is not needed.

--onnx adds model.onnx (dynamic batch and sequence axes; written only when onnxruntime's logits equal PyTorch's
within 1e-4) for the encoder heads (classification, regression, token classification); --int8 adds
model.int8.onnx, int8 dynamic quantization for CPU serving (see docs/deploy.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunelab.errors import TunelabError, check_writable
from tunelab.run.model_card import model_card

ADAPTER_USAGE = """This folder holds the PEFT adapter only (and the trained head); load it onto the base model:

```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification  # the AutoModelFor* of the task
base = AutoModelForSequenceClassification.from_pretrained("{backbone}", num_labels=...)
model = PeftModel.from_pretrained(base, "PATH/TO/THIS/FOLDER")
```
"""


# What a Hugging Face model folder holds (the files an export writes, and those of other exports: an adapter,
# PyTorch .bin weights, other tokenizers). --force deletes these; any other file in --out is kept.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.bin.index.json",
    "*.pt",
    "*.pth",
    "*.gguf",
    "tokenizer*",
    "vocab.*",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.*",
    "*.model",
    "*.onnx",
    "*.onnx.data",
    "README.md",
)


def clear_model_files(target: Path) -> list[str]:
    """Delete the model files of an earlier export: a stale adapter_config.json next to merged weights makes
    ``pipeline()`` load the folder as an adapter, and stale weight shards would be loaded with the new ones."""
    removed = sorted({p.name for pattern in MODEL_FILES for p in target.glob(pattern) if p.is_file()})
    for name in removed:
        (target / name).unlink()
    return removed


def export_run(
    run: str, out: str, force: bool = False, adapter: bool = False, onnx: bool = False, int8: bool = False
) -> Path:
    """The run as a plain HF folder (adapters merged into the weights), or with ``adapter=True``
    its PEFT adapter alone (adapter_config.json + adapter_model.safetensors, for PeftModel.from_pretrained).
    ``onnx``: also model.onnx, checked against PyTorch; ``int8`` (implies ``onnx``): also model.int8.onnx."""
    from tunelab.run.record import load_run

    onnx = onnx or int8
    if onnx and adapter:
        raise TunelabError("--onnx/--int8 export the whole model; they cannot be combined with --adapter.")

    target = Path(out).expanduser()
    if target.exists() and not target.is_dir():
        raise TunelabError(f"--out {out} is a file, not a folder. Give a folder to write the model into.")
    if target.exists() and any(target.iterdir()) and not force:
        raise TunelabError(f"'{out}' exists and is not empty. Choose another --out, or pass --force to overwrite it.")
    created = not target.exists()
    check_writable(target, "the export folder --out", "Choose a writable folder with --out DIR.")  # before loading
    try:
        cfg, module, datamodule, run_dir = load_run(run)
        if onnx:  # a head without an ONNX graph fails here, before anything is written
            from tunelab.deploy.onnx import check_onnx_head

            check_onnx_head(module.task.name)
        if force:
            clear_model_files(target)
        summary = json.loads((run_dir / "metrics.json").read_text())
        if adapter:  # a run without an adapter (or a merge of virtual tokens) fails here, before anything is written
            module.peft.save_adapter(module.model, target)
        else:
            module.peft.merged(module.model).save_pretrained(target, safe_serialization=True)
    except Exception:
        if created and target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # the folder this call made for nothing
        raise
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = datamodule.tokenizer
    # the length training cut inputs at: pipeline(..., truncation=True) then cuts where `tunelab predict` does
    tokenizer.model_max_length = trained_max_length(module.task, datamodule)
    tokenizer.save_pretrained(target)
    card = model_card(cfg, summary, module.task)
    if adapter:
        card = card.replace("## Results", ADAPTER_USAGE.format(backbone=cfg.model.backbone) + "\n## Results", 1)
    (target / "README.md").write_text(card)
    if onnx:
        export_deployment(target, int8)
    return target


def export_deployment(target: Path, int8: bool) -> None:
    """model.onnx (parity-checked) and, with ``int8``, model.int8.onnx, each with its check printed."""
    from tunelab.deploy import onnx as onnx_export

    path, parity = onnx_export.export_onnx(target)
    print(f"wrote {path}: {onnx_export.describe(parity)}")
    if int8:
        from tunelab.deploy import quantize

        path, agreement = quantize.quantize_int8(target)
        print(f"wrote {path}: {quantize.describe(agreement)}")


def trained_max_length(task, datamodule) -> int:
    return int(getattr(task, "max_source_length", None) or datamodule.max_length)


def push(folder: Path, repo_id: str, private: bool) -> str:
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(folder_path=str(folder), repo_id=repo_id).commit_url
    except Exception as err:  # network, auth, offline mode: all end the same way for the user
        raise TunelabError(
            f"Could not push {folder} to the Hub repo '{repo_id}': {type(err).__name__}: {str(err)[:300]}\n"
            "The export itself is complete. Check the network (HF_HUB_OFFLINE must be unset) and log in with "
            "`hf auth login`, then push again with --push-to-hub."
        ) from err


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tunelab export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a run directory (or 'latest')")
    parser.add_argument("--out", "-o", required=True, help="folder to write")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out, deleting the model files an earlier export left there",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--merged", action="store_true", help="the whole model, adapters merged in (the default)")
    what.add_argument("--adapter", action="store_true", help="a PEFT run's adapter alone (PeftModel.from_pretrained)")
    parser.add_argument(
        "--onnx", action="store_true", help="also write model.onnx (encoder heads; checked against PyTorch)"
    )
    parser.add_argument(
        "--int8", action="store_true", help="also write model.int8.onnx, int8 dynamic quantization (implies --onnx)"
    )
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload the folder to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    args = parser.parse_args(argv)
    folder = export_run(args.run, args.out, force=args.force, adapter=args.adapter, onnx=args.onnx, int8=args.int8)
    print(f"exported {folder}")
    if args.push_to_hub:
        print(f"pushed {push(folder, args.push_to_hub, args.private)}")
    return 0
