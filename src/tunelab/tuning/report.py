"""The trainable-parameter report: count, percent, and per part (embeddings, blocks, head, adapter)."""

from __future__ import annotations

from torch import nn

from tunelab.tuning import parts


def _adapter_params(model: nn.Module) -> set[int]:
    """Parameters a PEFT method added: its tuner layers' adapter weights and any prompt encoder."""
    ids = set()
    for name, module in model.named_modules():
        for attr in getattr(module, "adapter_layer_names", ()):
            sub = getattr(module, attr, None)
            if isinstance(sub, nn.Module):
                ids.update(id(p) for p in sub.parameters())
        if name.rsplit(".", 1)[-1] == "prompt_encoder":
            ids.update(id(p) for p in module.parameters())
    return ids


def parameter_report(model: nn.Module) -> dict:
    base = parts.unwrap(model)
    part_of = {id(p): "embeddings" for _, m in parts.embeddings(base) for p in m.parameters()}
    part_of.update({id(p): "blocks" for _, m in parts.blocks(base) for p in m.parameters()})
    part_of.update(dict.fromkeys(_adapter_params(model), "adapter"))
    part_of.update({id(p): "head" for h in parts.head_names(base) for p in getattr(base, h).parameters()})
    groups: dict[str, dict] = {}
    seen = set()
    for param in model.parameters():
        if id(param) in seen:  # tied weights count once
            continue
        seen.add(id(param))
        group = groups.setdefault(part_of.get(id(param), "other"), {"total": 0, "trainable": 0})
        group["total"] += param.numel()
        group["trainable"] += param.numel() if param.requires_grad else 0
    total = sum(g["total"] for g in groups.values())
    trainable = sum(g["trainable"] for g in groups.values())
    return {
        "total": total,
        "trainable": trainable,
        "trainable_percent": round(100 * trainable / max(1, total), 4),
        "groups": groups,
    }


def format_report(report: dict) -> str:
    lines = [f"trainable parameters: {report['trainable']:,} of {report['total']:,} ({report['trainable_percent']}%)"]
    for name, group in report.get("groups", {}).items():
        lines.append(f"  {name:<10} {group['trainable']:>12,} of {group['total']:>12,}")
    return "\n".join(lines)
