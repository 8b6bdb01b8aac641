"""A torchmetrics ``Metric`` whose state is a list of Python objects (texts, answer spans)."""

from __future__ import annotations

from torchmetrics import Metric


class ObjectListMetric(Metric):
    """Collects Python objects in ``self.items`` (reset with the metric like any state) and scores
    them in ``compute`` over the whole split: under DDP/FSDP the items of every process are
    gathered first (``torch.distributed.all_gather_object``), so each rank scores all of them.

    Why objects and not tensor states: an extractive-QA question's windows may land on different
    processes and must be merged before scoring, and the generation scores (sacreBLEU's smoothed
    corpus BLEU, rouge-score's stemmed ROUGE) are computed on texts; torchmetrics' tensor-state
    ``SQuAD``/``SacreBLEUScore``/``ROUGEScore`` score each update on its own (no window merging,
    no SQuAD v2 empty answers) or differ from the reported numbers (unsmoothed BLEU, nltk stemming).
    Objects are left alone when Lightning moves a logged metric to the loss's device."""

    full_state_update = True

    def __init__(self):
        super().__init__()
        self.add_state("items", default=[], dist_reduce_fx=None)

    def __hash__(self) -> int:  # torchmetrics hashes the state, and this state holds unhashable objects
        return id(self)

    def _apply(self, fn, exclude_state=()):
        return super()._apply(fn, exclude_state=("items", *exclude_state))

    def _sync_dist(self, dist_sync_fn=None, process_group=None) -> None:
        # torchmetrics gathers tensors only (apply_to_collection skips other objects): gather the
        # list itself, in rank order. ``unsync`` restores the local items from torchmetrics' cache.
        import torch.distributed as dist

        group = process_group or self.process_group
        gathered = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, list(self.items), group=group)
        self.items = [item for part in gathered for item in part]
