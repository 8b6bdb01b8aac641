"""What a tunelab checkpoint holds, decided in one place for saving, loading and the resume check.

A run that trains the whole model saves every tensor of the module. A run that trains part of it
(a PEFT method, BitFit, head-only, frozen layers) saves only the tensors that train: the rest is the
pretrained backbone, which ``model.backbone`` loads again. Gradual unfreezing and layer decay train
every parameter that is trainable when the module is built, so they save what that set holds.

    contents = CheckpointContents.of(module)   # after tuning was applied
    checkpoint["state_dict"] = contents.select(checkpoint["state_dict"])      # saving
    contents.check(saved_state_dict, module.state_dict())                      # resume / load
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.errors import TunelabError


@dataclass(frozen=True)
class CheckpointContents:
    trained: frozenset[str] | None  # state-dict keys a partial checkpoint holds; None: all of them

    @classmethod
    def of(cls, module, prefix: str = "model.") -> CheckpointContents:
        """From which parameters of ``module.model`` train (call after PEFT / freezing were applied)."""
        params = list(module.model.named_parameters())
        trained = frozenset(f"{prefix}{name}" for name, p in params if p.requires_grad)
        return cls(None if len(trained) == len(params) else trained)

    @property
    def partial(self) -> bool:
        return self.trained is not None

    def select(self, state_dict: dict) -> dict:
        """The part of a module's state dict that goes into a checkpoint."""
        return dict(state_dict) if self.trained is None else {k: v for k, v in state_dict.items() if k in self.trained}

    def required(self, module_state: dict) -> set[str]:
        return set(module_state) if self.trained is None else set(self.trained)

    def problems(self, saved: dict, module_state: dict) -> str | None:
        """Why ``saved`` (a checkpoint's state dict) cannot be loaded into this module, or None."""
        mismatched = [
            f"{k} {tuple(v.shape)} vs {tuple(module_state[k].shape)}"
            for k, v in saved.items()
            if k in module_state and hasattr(v, "shape") and tuple(v.shape) != tuple(module_state[k].shape)
        ]
        if mismatched:
            return "shapes differ: " + "; ".join(mismatched[:3])
        missing = sorted(self.required(module_state) - set(saved))
        if missing:
            return f"missing {len(missing)} of the tensors this run trains, e.g. {missing[:3]}"
        return None

    def check(self, saved: dict, module_state: dict, source: str) -> None:
        problem = self.problems(saved, module_state)
        if problem:
            raise TunelabError(
                f"{source} does not fit this model ({problem}). It was written by a run with another backbone, "
                "head or tuning method (peft=..., model.freeze...); resume or load it with that run's config."
            )
