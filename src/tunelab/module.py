"""``TuneModule``: a Hugging Face backbone with a task head, trained by Lightning.

The module owns optimization (parameter groups, optimizer, schedule), logging
(``train/``, ``val/``, ``test/`` metrics) and checkpoint hooks (the task's label state travels
in every checkpoint). Everything task-specific is delegated to ``self.task``.

Plain Python, no Hydra needed::

    task = SequenceClassification()
    data = TuneDataModule(loader=partial(builtin, "mr"), task=task, tokenizer="minilm")
    data.setup("fit")                        # learns the label set from the training split
    module = TuneModule("minilm", task, optimizer=partial(torch.optim.AdamW, lr=5e-5))
    L.Trainer(max_epochs=1).fit(module, data)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import lightning as L
import torch

from tunelab.optim import param_groups
from tunelab.tasks.base import Task


class TuneModule(L.LightningModule):
    def __init__(
        self,
        backbone: str,
        task: Task,
        optimizer: Callable = partial(torch.optim.AdamW, lr=5e-5, weight_decay=0.01),
        scheduler: Callable | None = None,
        trust_remote_code: bool = False,
        dropout: dict | None = None,
        gradient_checkpointing: bool = False,
        pretrained: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.task = task
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.model = task.build_model(backbone, trust_remote_code=trust_remote_code, pretrained=pretrained,
                                      dropout=dict(dropout or {}))
        # from_pretrained returns the model in eval mode, and Lightning keeps submodules' modes:
        # without this, dropout would silently stay off during training.
        self.model.train()
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.val_metrics = task.metrics().clone(prefix="val/")
        self.test_metrics = task.metrics().clone(prefix="test/")

    # ---- steps
    def training_step(self, batch, batch_idx):
        outputs = self.task.forward(self.model, batch)
        loss = self.task.loss(outputs, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def _eval_step(self, batch, metrics, split: str):
        outputs = self.task.forward(self.model, batch)
        loss = self.task.loss(outputs, batch)
        self.task.update_metrics(metrics, outputs, batch)
        self.log(f"{split}/loss", loss, prog_bar=split == "val", batch_size=len(batch["input_ids"]), sync_dist=True)
        self.log_dict(metrics, prog_bar=split == "val")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, "test")

    def on_validation_epoch_end(self):
        self.task.on_eval_epoch_end(self, "val")

    def on_test_epoch_end(self):
        self.task.on_eval_epoch_end(self, "test")

    def predict_step(self, batch, batch_idx):
        outputs = self.task.forward(self.model, batch)
        rows = self.task.postprocess(outputs, batch)
        # eval batches are length-sorted for speed; idx puts predictions back in input order
        return list(zip(batch["idx"].tolist(), rows))

    # ---- optimization
    def configure_optimizers(self):
        weight_decay = getattr(self.optimizer_factory, "keywords", {}).get("weight_decay", 0.0)
        optimizer = self.optimizer_factory(param_groups(self.model, weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- checkpoints: the task's learnt state (label set) travels with the weights
    def on_save_checkpoint(self, checkpoint):
        checkpoint["tunelab"] = {"task": type(self.task).__qualname__, "task_state": self.task.state_dict(),
                                 "backbone": self.backbone}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("tunelab", {}).get("task_state")
        if state:
            self.task.load_state_dict(state)

    def num_parameters(self) -> dict:
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable, "trainable_percent": round(100 * trainable / max(1, total), 4)}
