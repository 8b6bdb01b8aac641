"""Freezing: BitFit (biases only), head-only (linear probe), and ``Freeze``, what ``model.freeze`` builds
(embeddings, the bottom N blocks, or the whole backbone). The task head always stays trainable."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from tunelab.errors import TunelabError
from tunelab.tuning import parts
from tunelab.tuning.method import TuningMethod, keep_head_trainable, set_trainable


class BitFit(TuningMethod):
    """Train only the bias terms of the backbone, plus the head (Ben Zaken et al. 2022)."""

    name = "bitfit"

    def apply(self, model: nn.Module) -> nn.Module:
        biases = 0
        for name, param in model.named_parameters():
            is_bias = name.endswith(".bias")
            param.requires_grad_(is_bias)
            biases += is_bias
        if not biases:
            raise TunelabError(
                f"peft=bitfit: {type(model).__name__} has no bias parameters (e.g. Llama-style "
                "models use none). Choose peft=lora or peft=ia3 for this backbone."
            )
        keep_head_trainable(model)
        return model


class HeadOnly(TuningMethod):
    """A linear probe: the backbone is frozen, only the task head trains."""

    name = "head_only"

    def apply(self, model: nn.Module) -> nn.Module:
        set_trainable(model, False)
        if not keep_head_trainable(model):
            raise TunelabError(
                f"peft=head_only: no task head was found beside the backbone of "
                f"{type(parts.unwrap(model)).__name__} ({parts.describe(model)}); "
                "a tied LM head cannot be trained alone. Choose peft=lora."
            )
        return model


def _check_layers(layers) -> None:
    if isinstance(layers, bool) or not isinstance(layers, int):
        raise TunelabError(
            f"model.freeze.layers must be an integer (N: the bottom N blocks, -K: all but the top K), got {layers!r}."
        )


class Freeze:
    """What ``model.freeze`` builds (conf/model/common/tuning.yaml): which parts of the backbone stay fixed.

    The defaults freeze nothing. ``TuneModule`` applies it after the PEFT method, so freezing a block
    also freezes the adapters inside it."""

    KEYS = ("embeddings", "layers", "backbone")

    def __init__(self, embeddings: bool = False, layers: int = 0, backbone: bool = False):
        _check_layers(layers)
        self.embeddings, self.layers, self.backbone = bool(embeddings), layers, bool(backbone)

    @classmethod
    def of(cls, spec: Freeze | Mapping | None) -> Freeze:
        """A ``Freeze`` from what ``TuneModule(freeze=...)`` was given: one, a dict of its keys, or None."""
        if isinstance(spec, Freeze):
            return spec
        unknown = sorted(set(spec or {}) - set(cls.KEYS) - {"_target_"})
        if unknown:
            raise TunelabError(
                f"model.freeze has unknown keys {unknown}; the keys are embeddings (true/false), "
                "layers (how many bottom blocks) and backbone (true/false)."
            )
        return cls(**{k: v for k, v in dict(spec or {}).items() if k != "_target_"})

    def apply(self, model: nn.Module) -> nn.Module:
        return freeze(model, self.embeddings, self.layers, self.backbone)

    def __repr__(self) -> str:
        return f"Freeze(embeddings={self.embeddings}, layers={self.layers}, backbone={self.backbone})"


def freeze(model: nn.Module, embeddings: bool = False, layers: int = 0, backbone: bool = False) -> nn.Module:
    """Freeze the embeddings, the embeddings and the bottom ``layers`` blocks, or the whole ``backbone``
    (the head always trains)."""
    _check_layers(layers)
    if backbone:
        set_trainable(model, False)
        keep_head_trainable(model)
        return model
    if embeddings or layers:  # freezing the bottom blocks freezes what lies below them too
        found = parts.embeddings(model)
        if not found:
            raise TunelabError(
                f"model.freeze.embeddings=true, but no embedding module was found: {parts.describe(model)}."
            )
        for _, module in found:
            set_trainable(module, False)
    if layers:
        blocks = parts.require_blocks(model, "model.freeze.layers")
        if layers < 0:  # -K: train only the top K blocks, whatever the depth of the backbone
            if -layers > len(blocks):
                raise TunelabError(
                    f"model.freeze.layers={layers} keeps the top {-layers} blocks trainable, but "
                    f"{parts.describe(model)}."
                )
            layers = len(blocks) + layers
        if layers > len(blocks):
            raise TunelabError(
                f"model.freeze.layers={layers}, but {parts.describe(model)}. Freeze at most "
                f"{len(blocks)} blocks, or freeze everything with model.freeze.backbone=true."
            )
        for _, module in blocks[:layers]:
            set_trainable(module, False)
    return model
