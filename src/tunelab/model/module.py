"""``TuneModule``: a Hugging Face backbone with a task head, trained by Lightning.

The module owns optimization (parameter groups, optimizer, schedule), logging
(``train/``, ``val/``, ``test/`` metrics) and checkpoint hooks (the task's label state travels
in every checkpoint). Everything task-specific is delegated to ``self.task``.

Plain Python, no Hydra needed (tunelab/commands/parts.py wires the same parts from a config)::

    task = SequenceClassification()
    data = TuneDataModule(loader=partial(builtin, "mr"), task=task, tokenizer="minilm")
    task.setup(data.tokenizer, data.learn_labels())   # the label set, learnt from the training split
    module = TuneModule("minilm", task)               # tunelab train's optimizer and schedule
    L.Trainer(max_epochs=1).fit(module, data)

``optimizer`` / ``scheduler`` default to what ``tunelab train`` builds with no override
(conf/optimizer/adamw.yaml: fused AdamW, lr 5e-5, weight decay 0.01; conf/scheduler/linear.yaml:
10% warm-up, linear decay); ``scheduler=None`` trains at a constant rate.

What trains is decided once, after the task built the model (``tunelab.tuning``)::

    TuneModule("minilm", task, peft=PeftMethod("lora", r=8), freeze={"layers": 2}, layer_decay=0.8,
               adversarial=EmbeddingAdversary(epsilon=0.1))
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch

from tunelab.run.checkpoint_contents import CheckpointContents
from tunelab.tasks.base import Task
from tunelab.tuning import TuningMethod, apply_tuning


class TuneModule(L.LightningModule):
    def __init__(
        self,
        backbone: str,
        task: Task,
        optimizer: Callable | str = "default",
        scheduler: Callable | str | None = "default",
        trust_remote_code: bool = False,
        dropout: dict | None = None,
        gradient_checkpointing: bool = False,
        pretrained: bool = True,
        peft: TuningMethod | None = None,
        freeze=None,  # tunelab.tuning.freeze.Freeze (model.freeze), a dict of its keys, or None
        layer_decay=None,  # tunelab.tuning.layer_decay.LayerDecay (model.layer_decay), its rate, or None
        adversarial=None,  # tunelab.tuning.adversarial.EmbeddingAdversary (model.adversarial), or None
        compile: bool = False,  # torch.compile the model once, in configure_model (model.compile)
        attn_implementation: str | None = None,  # "sdpa", "eager", "flash_attention_2"; None: transformers' default
    ):
        super().__init__()
        self.backbone = backbone
        self.task = task
        # "default": tunelab train's own (tunelab.model.optim.default_optimizer / default_scheduler)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        attention = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.model = task.build_model(
            backbone,
            trust_remote_code=trust_remote_code,
            pretrained=pretrained,
            dropout=dict(dropout or {}),
            **attention,
        )
        # from_pretrained returns the model in eval mode, and Lightning keeps submodules' modes:
        # without this, dropout would silently stay off during training.
        self.model.train()
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # what trains (tunelab.tuning): a PEFT method, BitFit, head-only, frozen blocks; then how it trains
        self.peft = peft or TuningMethod()
        self.model = apply_tuning(self.model, self.peft, freeze)
        from tunelab.tuning.layer_decay import LayerDecay

        self.layer_decay = LayerDecay.of(layer_decay)  # how configure_optimizers cuts the parameter groups
        self.adversarial = adversarial
        self.compile_model, self._compiled = compile, False  # not self.compile: that is nn.Module.compile
        # checkpoints of a run that trains part of the model hold only that part (+ the pretrained backbone)
        self.checkpoint_contents = CheckpointContents.of(self)
        self.val_metrics = task.metrics().clone(prefix="val/")
        self.test_metrics = task.metrics().clone(prefix="test/")

    def configure_model(self):
        # trainer=fsdp: ModelParallelStrategy gives the module a device mesh; shard with FSDP2 (tunelab/model/sharding.py)
        if self.device_mesh is not None:
            from tunelab.model.sharding import shard

            shard(self.model, self.device_mesh)
        if self.compile_model and not self._compiled:
            # in place (nn.Module.compile): the state_dict keys, hence checkpoints, stay the uncompiled model's
            self.model.compile()
            self._compiled = True

    # ---- steps
    def training_step(self, batch, batch_idx):
        def compute_loss():
            return self.task.loss(self.task.forward(self.model, batch), batch)

        loss = self.adversarial.training_loss(self.model, compute_loss) if self.adversarial else compute_loss()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def _eval_step(self, batch, batch_idx: int, metrics, split: str):
        rows = len(batch["input_ids"])
        real = _real_rows(self.trainer, split, batch_idx, rows)
        if real < rows:  # the distributed sampler's padding: keep one row so every rank runs the same forwards
            batch = {k: v[: max(real, 1)] for k, v in batch.items()}
        outputs = self.task.forward(self.model, batch)
        loss = self.task.loss(outputs, batch)
        if real:
            self.task.update_metrics(metrics, self.model, outputs, batch)
        # weighted by what the loss averages over (rows, or scored tokens), so the epoch's value is the
        # split's own mean however the rows fall into batches and processes; padding weighs nothing. A float:
        # Lightning syncs the summed weight with an average, which truncates an integer (17 rows / 2 -> 8)
        weight = float(self.task.loss_weight(batch)) if real else 0.0
        loss = loss.double() if weight else loss.new_zeros((), dtype=torch.float64)  # no scored row: not NaN x 0
        # float64: Lightning accumulates in the logged dtype, and float32 sums move the 7th digit with the batching
        self.log(f"{split}/loss", loss, prog_bar=split == "val", batch_size=weight, sync_dist=True)
        self.log_dict(metrics, prog_bar=split == "val")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, self.test_metrics, "test")

    def on_validation_epoch_end(self):
        self.task.on_eval_epoch_end(self, "val")

    def on_test_epoch_end(self):
        self.task.on_eval_epoch_end(self, "test")

    def predict_step(self, batch, batch_idx):
        outputs = self.task.forward(self.model, batch)
        rows = self.task.postprocess(self.model, outputs, batch)
        # eval batches are length-sorted for speed; idx puts predictions back in input order
        return list(zip(batch["idx"].tolist(), rows))

    # ---- optimization
    def configure_optimizers(self):
        from tunelab.model.optim import build_optimizer, default_optimizer, default_scheduler

        factory = default_optimizer() if self.optimizer_factory == "default" else self.optimizer_factory
        schedule = default_scheduler() if self.scheduler_factory == "default" else self.scheduler_factory
        # groups flag decay / lr scale; their lr and weight decay come from the optimizer's own defaults
        optimizer = build_optimizer(factory, self.layer_decay.param_groups(self.model))
        if optimizer.defaults.get("fused") and self._clips_under_mixed_precision():
            # Lightning refuses to clip gradients under 16-/bf16-mixed with an optimizer that unscales inside
            # its step (a fused one): keep the per-tensor kernel there
            optimizer = build_optimizer(factory, self.layer_decay.param_groups(self.model), fused=False)
        self._configured_lrs = [group["lr"] for group in optimizer.param_groups]
        if schedule is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = schedule(optimizer, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _apply_configured_lr_after_resume(self) -> None:
        """A resumed run trains with the optimizer.lr of its command, not the checkpoint's.

        Restoring a checkpoint puts back the learning rates it was saved with (optimizer groups and
        the schedule's base values); after a divergence the user resumes with a lower optimizer.lr and
        means it. The schedule keeps its position; only its scale changes.
        """
        configured = getattr(self, "_configured_lrs", None)
        if not self.trainer.ckpt_path or not configured:
            return
        optimizer = self.trainer.optimizers[0]
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        for i, (group, wanted) in enumerate(zip(optimizer.param_groups, configured)):
            saved = group.get("initial_lr", group["lr"])
            if saved == wanted or not saved:
                continue
            group["lr"] *= wanted / saved
            group["initial_lr"] = wanted
            for scheduler in schedulers:
                if hasattr(scheduler, "base_lrs"):
                    scheduler.base_lrs[i] = wanted
            if i == 0:
                from lightning.pytorch.utilities import rank_zero_info

                rank_zero_info(
                    f"Resumed with optimizer.lr={wanted:g}; the checkpoint was trained with {saved:g}. "
                    "The schedule continues from its step at the new rate."
                )

    def _clips_under_mixed_precision(self) -> bool:
        from lightning.pytorch.plugins.precision import MixedPrecision

        trainer = self._trainer
        return isinstance(getattr(trainer, "precision_plugin", None), MixedPrecision) and bool(
            getattr(trainer, "gradient_clip_val", None)
        )

    def on_fit_start(self):
        self.peft.on_fit_start(self.model, int(self.trainer.estimated_stepping_batches))

    def on_train_start(self):  # after Lightning restored a checkpoint's optimizer and schedule
        self._apply_configured_lr_after_resume()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # after the optimizer step; the gradients are still there (Lightning zeroes them before the next step)
        self.peft.after_optimizer_step(self.model, self.global_step)

    # ---- checkpoints: the task's learnt state (label set) travels with the weights
    def on_save_checkpoint(self, checkpoint):
        checkpoint["tunelab"] = {
            "task": type(self.task).__qualname__,
            "task_state": self.task.state_dict(),
            "backbone": self.backbone,
            "partial": self.checkpoint_contents.partial,
        }
        checkpoint["state_dict"] = self.checkpoint_contents.select(checkpoint["state_dict"])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if not self.checkpoint_contents.partial:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        # a partial checkpoint: the frozen weights come from the pretrained backbone, not from the file
        self.checkpoint_contents.check(state_dict, self.state_dict(), "The checkpoint")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("tunelab", {}).get("task_state")
        if state:
            self.task.load_state_dict(state)

    def num_parameters(self) -> dict:
        """Total and trainable parameter counts, per part (embeddings, blocks, head, adapter)."""
        from tunelab.tuning.report import parameter_report

        return parameter_report(self.model)


def _real_rows(trainer, split: str, batch_idx: int, rows: int) -> int:
    """How many rows of this evaluation batch are not the distributed sampler's padding.

    For validation and test, Lightning 2.6 wraps the loader's sampler in a ``DistributedSampler``
    (``DistributedSamplerWrapper``, drop_last=False) that repeats the first indices until every
    rank has ``ceil(N / world)``; only predict gets the unrepeated one. Rank r's j-th index is the
    split's position ``r + j * world``: padding when that is >= N, i.e. the rank's last row(s).
    """
    from torch.utils.data import DistributedSampler

    loader = trainer.val_dataloaders if split == "val" else trainer.test_dataloaders
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last or sampler.total_size <= len(sampler.dataset):
        return rows
    own = len(range(sampler.rank, len(sampler.dataset), sampler.num_replicas))
    return max(0, min(rows, own - batch_idx * loader.batch_size))
