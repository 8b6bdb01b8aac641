"""A torchmetrics ``Metric`` whose state is a list of Python objects (texts, answer spans)."""

from __future__ import annotations

from torchmetrics import Metric


class ObjectListMetric(Metric):
    """Collects Python objects in ``self.items`` (reset with the metric like any state) and scores
    them in ``compute``. Objects are not tensors: they do not sync across processes, and they are
    left alone when Lightning moves a logged metric to the loss's device on every log call."""

    full_state_update = True

    def __init__(self):
        super().__init__()
        self.add_state("items", default=[], dist_reduce_fx=None)

    def __hash__(self) -> int:  # torchmetrics hashes the state, and this state holds unhashable objects
        return id(self)

    def _apply(self, fn, exclude_state=()):
        return super()._apply(fn, exclude_state=("items", *exclude_state))
