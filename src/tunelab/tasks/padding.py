"""A collate function for heads whose features are more than ``input_ids`` + one label.

Every list-valued feature is padded to the longest row of the batch (right side) with its own
pad value: ``input_ids`` with the tokenizer's pad id, ``labels`` with -100 (ignored by the loss),
anything else with 0 unless ``pad_values`` says otherwise. Scalars become a tensor. Keys named in
``passthrough`` (words, offsets, answer texts ...) stay plain Python lists: the model never sees
them, ``postprocess`` and the metrics do.
"""

from __future__ import annotations

import torch


class PadCollator:
    def __init__(self, tokenizer, pad_values: dict | None = None, passthrough: tuple[str, ...] = ()):
        self.pad_values = {"input_ids": tokenizer.pad_token_id, "labels": -100, **(pad_values or {})}
        self.passthrough = tuple(passthrough)

    def __call__(self, rows: list[dict]) -> dict:
        batch = {}
        for key in rows[0]:
            values = [row[key] for row in rows]
            if key in self.passthrough:
                batch[key] = values
            elif isinstance(values[0], (list, tuple)):
                width = max(len(v) for v in values)
                pad = self.pad_values.get(key, 0)
                batch[key] = torch.tensor([list(v) + [pad] * (width - len(v)) for v in values])
            else:
                batch[key] = torch.tensor(values)
        return batch
