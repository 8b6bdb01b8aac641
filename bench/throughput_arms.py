"""The measured arms of bench/throughput.py. Each runs alone in a fresh process, so its peak RSS and
its start-up time are its own:

    python bench/throughput_arms.py ARM '{"seed": 1, ...}'     (ARM: hf, raw, predict, cache)

The tunelab arms are the real ``tunelab train`` command; they load ``step_timer`` below through
``+callbacks.bench_timer._target_=throughput_arms.step_timer`` (bench/ is on PYTHONPATH).

Every arm writes one JSON to $BENCH_RESULT: per optimizer step the wall clock and the batch's rows,
real tokens (attention mask) and padded tokens; seconds from process spawn ($BENCH_SPAWN_TIME, set
by the parent just before it starts the process) to the end of the first optimizer step; peak RSS.
The parent turns these into rates, so every arm is summarised by the same code.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


class Recorder:
    """Per-step timings and batch sizes; framework-free so all arms record the same way."""

    def __init__(self, arm: str):
        self.data = {"arm": arm, "batches": [], "step_end": [], "first_step_s": None, "train_start_s": None}

    def train_start(self) -> None:
        """Everything before the first batch (imports, config, data, model, framework set-up) is done."""
        self.data["train_start_s"] = time.time() - float(os.environ["BENCH_SPAWN_TIME"])

    def batch(self, attention_mask) -> None:
        """A batch that will be (or was just) stepped on: rows, real tokens, padded tokens."""
        self.data["batches"].append(
            [int(attention_mask.shape[0]), int(attention_mask.sum()), int(attention_mask.numel())]
        )

    def step_end(self) -> None:
        if self.data["first_step_s"] is None:
            self.data["first_step_s"] = time.time() - float(os.environ["BENCH_SPAWN_TIME"])
            import torch

            self.data["threads"] = torch.get_num_threads()
        self.data["step_end"].append(time.perf_counter())

    def train_end(self, model=None) -> None:
        self.data["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        config = getattr(model, "config", None)
        self.data["attn_implementation"] = getattr(config, "_attn_implementation", None)
        self.write()

    def eval_result(self, rows: int, seconds: float, accuracy: float | None = None, **extra) -> None:
        self.data["eval"] = {"rows": rows, "seconds": seconds, "accuracy": accuracy, **extra}
        self.write()

    def write(self) -> None:
        Path(os.environ["BENCH_RESULT"]).write_text(json.dumps(self.data))


# ---- tunelab: a Lightning callback inside the real `tunelab train`
def step_timer():
    """Built by Hydra (a function, so that this module imports Lightning only inside tunelab's process)."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self):
            self.rec = Recorder("tunelab")

        def on_train_start(self, trainer, pl_module):
            self.rec.train_start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.rec.batch(batch["attention_mask"])  # Lightning calls this after the optimizer step
            self.rec.step_end()

        def on_train_end(self, trainer, pl_module):
            self.rec.train_end(pl_module.model)

        def on_test_epoch_start(self, trainer, pl_module):
            self.test_rows, self.test_started = 0, time.perf_counter()

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            self.test_rows += len(batch["input_ids"])

        def on_test_epoch_end(self, trainer, pl_module):
            # accuracy is read by the parent from the run's metrics.json (what `tunelab train` reports)
            self.rec.eval_result(self.test_rows, time.perf_counter() - self.test_started)

    return StepTimer()


# ---- shared by the Hugging Face Trainer and the raw loop
class FixedOrder:
    """The order of ``torch.utils.data.RandomSampler(generator=Generator().manual_seed(seed))`` (tunelab's
    sampler with data.group_by_length=false), as a plain sampler that accelerate does not replace."""

    def __init__(self, n: int, seed: int):
        import torch

        self.order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()

    def __len__(self):
        return len(self.order)

    def __iter__(self):
        return iter(self.order)


def load_splits(p: dict):
    """tunelab's tokenized splits from its cache: every arm trains on the same token ids."""
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_from_disk(p["splits_dir"])


def load_model(p: dict):
    import torch
    from transformers import AutoModelForSequenceClassification, set_seed

    torch.set_num_threads(p["threads"])
    set_seed(p["seed"])
    return AutoModelForSequenceClassification.from_pretrained(p["model_dir"], num_labels=2)


class CountingCollator:
    """Dynamic padding (what the Trainer uses by default with a tokenizer), counting each batch's tokens."""

    def __init__(self, tokenizer, rec: Recorder):
        from transformers import DataCollatorWithPadding

        self.pad, self.rec = DataCollatorWithPadding(tokenizer), rec

    def __call__(self, features):
        batch = self.pad(features)
        self.rec.batch(batch["attention_mask"])
        return batch


def hf_arm(p: dict) -> None:
    """The Hugging Face Trainer. sampling: same (tunelab's random order), default (its own), grouped."""
    import numpy as np
    from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    rec = Recorder(f"hf_{p['sampling']}")
    splits, model = load_splits(p), load_model(p)
    tokenizer = AutoTokenizer.from_pretrained(p["model_dir"])

    class Steps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            rec.train_start()

        def on_step_end(self, args, state, control, **kwargs):
            rec.step_end()

        def on_train_end(self, args, state, control, **kwargs):
            rec.train_end(model)

    class SameOrderTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return FixedOrder(len(train_dataset if train_dataset is not None else self.train_dataset), p["seed"])

    args = TrainingArguments(
        output_dir=p["work_dir"],
        per_device_train_batch_size=p["batch_size"],
        per_device_eval_batch_size=p["eval_batch_size"],
        learning_rate=p["lr"],
        weight_decay=p["weight_decay"],
        warmup_steps=p["warmup"],
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        max_steps=p["steps"],
        seed=p["seed"],
        data_seed=p["seed"],
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        dataloader_num_workers=0,
        use_cpu=True,
        optim=p.get("optim", "adamw_torch_fused"),
        train_sampling_strategy="group_by_length" if p["sampling"] == "grouped" else "random",
    )
    cls = SameOrderTrainer if p["sampling"] == "same" else Trainer
    trainer = cls(
        model=model,
        args=args,
        train_dataset=splits["train"],
        processing_class=tokenizer,
        data_collator=CountingCollator(tokenizer, rec),
        callbacks=[Steps()],
    )
    trainer.train()
    if p["test"]:
        started = time.perf_counter()
        out = trainer.predict(splits["test"])
        seconds = time.perf_counter() - started
        # group_by_length also length-groups (and shuffles) the predict sampler: compare with label_ids
        accuracy = float((np.argmax(out.predictions, -1) == out.label_ids).mean())
        in_order = [int(x) for x in out.label_ids] == list(splits["test"]["labels"])
        rec.eval_result(len(out.label_ids), seconds, accuracy, rows_in_input_order=in_order)


def raw_arm(p: dict) -> None:
    """A minimal PyTorch loop: the same batches, AdamW groups, schedule and clipping as the others."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    rec = Recorder("raw_same")
    splits, model = load_splits(p), load_model(p)
    train = splits["train"].remove_columns(["idx", "length"])
    loader = DataLoader(
        train,
        batch_size=p["batch_size"],
        sampler=FixedOrder(len(train), p["seed"]),
        collate_fn=CountingCollator(AutoTokenizer.from_pretrained(p["model_dir"]), rec),
    )
    decay = [q for n, q in model.named_parameters() if q.ndim >= 2 and "norm" not in n.lower()]
    rest = [q for n, q in model.named_parameters() if not (q.ndim >= 2 and "norm" not in n.lower())]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": p["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=p["lr"],
        fused=p.get("optim", "adamw_torch_fused") == "adamw_torch_fused",
    )
    warm = int(p["warmup"] * p["steps"])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (p["steps"] - s) / max(1, p["steps"] - warm)),
    )
    model.train()
    rec.train_start()
    for step, batch in enumerate(loader):
        if step == p["steps"]:
            break
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        rec.step_end()
    rec.train_end(model)


if __name__ == "__main__":
    import warnings

    # conf/hydra/launcher/*.yaml are validated against the plugins' schemas on purpose (as in tunelab.commands.train)
    warnings.filterwarnings(
        "ignore", message=r"\s*'hydra/.*' is validated against ConfigStore schema", category=UserWarning
    )
    from throughput_eval_arms import cache_arm, predict_arm  # the evaluation-side arms

    arm, params = sys.argv[1], json.loads(sys.argv[2])
    {"hf": hf_arm, "raw": raw_arm, "predict": predict_arm, "cache": cache_arm}[arm](params)
