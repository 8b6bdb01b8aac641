"""How much of the backbone trains: PEFT methods, BitFit, head-only, freezing, layer-wise LR decay,
gradual unfreezing, adversarial training on the embeddings, and the trainable-parameter report.

``TuneModule`` calls ``apply_tuning`` once after the task built the model; everything here depends
only on the Hugging Face model (module names, ``base_model_prefix``), so it serves every head.
"""

from __future__ import annotations

from tunelab.tuning.method import TuningMethod


def apply_tuning(model, peft: TuningMethod | None = None, freeze=None):
    """The model with the PEFT method applied (possibly wrapped), then ``freeze``: a ``tunelab.tuning.freeze.Freeze``,
    a dict of its keys (embeddings, layers, backbone) or None."""
    from tunelab.tuning.freeze import Freeze

    frozen = Freeze.of(freeze)  # its mistakes first: before a PEFT method wraps the model
    model = (peft or TuningMethod()).apply(model)
    return frozen.apply(model)


__all__ = ["TuningMethod", "apply_tuning"]
