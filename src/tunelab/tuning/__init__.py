"""How much of the backbone trains: PEFT methods, BitFit, head-only, freezing, layer-wise LR decay,
gradual unfreezing, adversarial training on the embeddings, and the trainable-parameter report.

``TuneModule`` calls ``apply_tuning`` once after the task built the model; everything here depends
only on the Hugging Face model (module names, ``base_model_prefix``), so it serves every head.
"""

from __future__ import annotations

from tunelab.tuning.method import TuningMethod


def apply_tuning(model, peft: TuningMethod | None = None, freeze: dict | None = None):
    """The model with the PEFT method applied (possibly wrapped), then the ``freeze`` keys."""
    from tunelab.tuning.freeze import freeze as freeze_parts

    model = (peft or TuningMethod()).apply(model)
    unknown = set(freeze or {}) - {"embeddings", "layers", "backbone"}
    if unknown:
        from tunelab.errors import TunelabError

        raise TunelabError(
            f"model.freeze has unknown keys {sorted(unknown)}; the keys are embeddings (true/false), "
            "layers (how many bottom blocks) and backbone (true/false)."
        )
    if freeze:
        model = freeze_parts(model, **dict(freeze))
    return model


__all__ = ["TuningMethod", "apply_tuning"]
