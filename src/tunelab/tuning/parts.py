"""Where the embeddings, the transformer blocks and the task head are, in any Hugging Face model.

Freezing, layer-wise learning rates, gradual unfreezing, PEFT's ``modules_to_save`` and the
parameter report all need the same three answers, for encoders (BERT), decoders (Llama, GPT-2)
and encoder-decoders (T5, BART, bert2bert) alike. They are found from module names and
``base_model_prefix`` only, so every task head (built by ``task.build_model``) works.

  head        the top-level children beside the backbone (``classifier``, ``score``, ``qa_outputs``,
              an untied ``lm_head``); a head tied to the input embeddings counts as embeddings
  embeddings  the modules named ``*embeddings``/``embed_*``/``wte``/``wpe``/``shared``
  blocks      the entries of the ModuleLists named ``layer``/``layers``/``h``/``block``/``blocks``,
              bottom first (encoder blocks before decoder blocks)
"""

from __future__ import annotations

import re

from torch import nn

from tunelab.errors import TunelabError

HEAD_NAMES = ("classifier", "score", "qa_outputs", "lm_head", "cls", "classification_head")
BLOCK_LIST_NAMES = ("layer", "layers", "h", "block", "blocks")
EMBEDDING_NAME = re.compile(r"(^|_)embed|embeddings$|^wte$|^wpe$|^shared$")


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying transformers model of a PEFT-wrapped one (same parameter objects)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _topmost(named: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Drop entries nested inside an earlier entry (T5's block.N.layer inside encoder.block)."""
    kept: list[tuple[str, nn.Module]] = []
    for name, module in named:
        if not any(name.startswith(k + ".") for k, _ in kept):
            kept.append((name, module))
    return kept


def _input_embedding_params(model: nn.Module) -> set[int]:
    try:
        return {id(p) for p in model.get_input_embeddings().parameters()}
    except (AttributeError, NotImplementedError):
        return set()


def head_names(model: nn.Module) -> list[str]:
    """Top-level child names that make up the task head (always trained)."""
    model = unwrap(model)
    children = dict(model.named_children())
    prefix = getattr(model, "base_model_prefix", "")
    names = [n for n in children if n != prefix] if prefix in children else [n for n in children if n in HEAD_NAMES]
    tied = _input_embedding_params(model)
    heads = []
    for name in names:
        params = list(children[name].parameters())
        if params and not all(id(p) in tied for p in params):
            heads.append(name)
    return heads


def block_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    model = unwrap(model)
    heads = tuple(f"{h}." for h in head_names(model))
    found = [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.ModuleList)
        and len(m)
        and n.rsplit(".", 1)[-1] in BLOCK_LIST_NAMES
        and not n.startswith(heads)
    ]
    return _topmost(found)


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The transformer blocks, bottom first: ``[("bert.encoder.layer.0", module), ...]``."""
    return [(f"{name}.{i}", block) for name, modules in block_lists(model) for i, block in enumerate(modules)]


def embeddings(model: nn.Module) -> list[tuple[str, nn.Module]]:
    model = unwrap(model)
    heads = tuple(f"{h}." for h in head_names(model))
    block_prefixes = tuple(f"{n}." for n, _ in block_lists(model))
    found = [
        (n, m)
        for n, m in model.named_modules()
        if n and EMBEDDING_NAME.search(n.rsplit(".", 1)[-1]) and not n.startswith(heads + block_prefixes)
    ]
    return _topmost(found)


def describe(model: nn.Module) -> str:
    """One line of what the backbone has, for error messages."""
    model = unwrap(model)
    lists = ", ".join(f"{n} ({len(m)})" for n, m in block_lists(model)) or "none found"
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    return (
        f"the {model_type} backbone has {len(blocks(model))} blocks [{lists}], embeddings "
        f"{[n for n, _ in embeddings(model)]}, head {head_names(model)}"
    )


def require_blocks(model: nn.Module, what: str) -> list[tuple[str, nn.Module]]:
    found = blocks(model)
    if not found:
        raise TunelabError(
            f"{what} needs the backbone's transformer blocks, but no ModuleList named "
            f"{'/'.join(BLOCK_LIST_NAMES)} was found in {type(unwrap(model)).__name__}. "
            "Use peft=lora or full fine-tuning for this architecture."
        )
    return found
