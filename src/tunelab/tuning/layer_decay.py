"""Layer-wise learning-rate decay: one parameter group per block, the head at the base LR.

With ``L`` blocks, block ``i`` (0 = bottom) trains at ``lr * decay ** (L - i)``, the embeddings at
``lr * decay ** (L + 1)`` and the head (and anything above the blocks) at ``lr``. Lower layers hold
general features, so they move less (ELECTRA, BEiT recipes). Encoder-decoders count the encoder
blocks first, then the decoder blocks. Each depth is split into decayed / not-decayed weights.
Groups carry ``lr_scale`` and ``decay`` flags; ``tunelab.model.optim.build_optimizer`` turns them into
each group's lr and weight decay from the optimizer's own (``optimizer.defaults``).
"""

from __future__ import annotations

from torch import nn

from tunelab.errors import TunelabError
from tunelab.model.optim import _no_decay
from tunelab.tuning import parts


def layer_decay_groups(model: nn.Module, decay: float) -> list[dict]:
    if not 0.0 < decay <= 1.0:
        raise TunelabError(f"model.layer_decay must be in (0, 1] (e.g. 0.8), got {decay}.")
    blocks = parts.require_blocks(model, "model.layer_decay")
    top = len(blocks) + 1
    depth_of = {id(p): 0 for _, m in parts.embeddings(model) for p in m.parameters()}
    depth_of.update({id(p): i + 1 for i, (_, m) in enumerate(blocks) for p in m.parameters()})
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = depth_of.get(id(param), top)
        no_decay = _no_decay(name, param)
        group = groups.setdefault(
            (depth, no_decay),
            {
                "params": [],
                "lr_scale": decay ** (top - depth),
                "decay": not no_decay,
                "name": f"{'embeddings' if depth == 0 else 'head' if depth == top else f'block{depth - 1}'}"
                f".{'no_decay' if no_decay else 'decay'}",
            },
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


class LayerDecay:
    """What ``model.layer_decay`` builds (conf/model/common/tuning.yaml): how the optimizer's parameter groups
    are cut. ``rate`` null: two groups at optimizer.lr (decayed, not decayed); a rate in (0, 1]:
    ``layer_decay_groups`` above."""

    def __init__(self, rate: float | None = None):
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0):
            raise TunelabError(
                f"model.layer_decay.rate must be in (0, 1] (e.g. model.layer_decay.rate=0.8), or null for none; "
                f"got {rate!r}."
            )
        self.rate = rate

    @classmethod
    def of(cls, spec) -> LayerDecay:
        """A ``LayerDecay`` from what ``TuneModule(layer_decay=...)`` was given: one, a rate, or None
        (``model.layer_decay=0.8`` on the command line replaces the object's config with its rate)."""
        return spec if isinstance(spec, LayerDecay) else cls(spec)

    def param_groups(self, model: nn.Module) -> list[dict]:
        from tunelab.model.optim import param_groups

        if self.rate is None:
            return param_groups(model)
        return layer_decay_groups(model, self.rate)

    def __repr__(self) -> str:
        return f"LayerDecay(rate={self.rate})"
