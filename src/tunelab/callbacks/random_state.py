"""The RNG states travel in checkpoints, so a resumed run draws the same dropout masks as an
uninterrupted one."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


class RandomState(L.Callback):
    """Saves the torch / numpy / python RNG states in each checkpoint and restores them on resume.

    Lightning does not do this itself; without it a resumed run's dropout masks differ from an
    uninterrupted run's, and so do its final metrics. States are plain lists and tensors so that
    checkpoints load with ``torch.load(weights_only=True)``.
    """

    def state_dict(self):
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": _to_lists(random.getstate()),
        }

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(_to_tuples(state["python"]))


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
