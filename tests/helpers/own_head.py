"""A user's own head, outside tunelab, plugged in through task._target_=helpers.own_head.MeanPoolClassification."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from tunelab.model.backbone import load_model
from tunelab.tasks import SequenceClassification


class MeanPoolClassifier(torch.nn.Module):
    def __init__(self, encoder, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return SimpleNamespace(logits=self.head((hidden * mask).sum(1) / mask.sum(1)))


class MeanPoolClassification(SequenceClassification):
    """Mean of the token states instead of [CLS], with a fresh linear layer."""

    def build_model(self, backbone, **load_kwargs):
        from transformers import AutoModel

        return MeanPoolClassifier(load_model(AutoModel, backbone, **load_kwargs), len(self.labels))
