"""Causal language modelling: plain text, or instruction data whose prompt is masked from the loss.

Rows hold ``text`` (the document, or the response) and optionally ``prompt``. With a prompt, the
input is ``prompt + text + eos`` and only the ``text + eos`` tokens are scored; the prompt goes
through the tokenizer's chat template (as a user turn) when it has one and ``chat_template: true``.
Metric: perplexity = exp(summed token loss / scored tokens) over the whole split. After each
validation epoch a few generated samples are printed and appended to ``<run>/samples.jsonl``.

Predict: every input ``text`` is a prompt (for a model trained with prompts) or a text to continue;
the answer is the greedy continuation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task
from tunelab.tasks.padding import PadCollator


class Perplexity(Metric):
    """exp(total negative log-likelihood / total scored tokens): not a mean of per-batch values."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("nll", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        nll, count = token_nll(logits, labels)
        self.nll += nll.double().sum()
        self.tokens += count

    def compute(self) -> torch.Tensor:
        return torch.exp(self.nll / self.tokens.clamp(min=1)).float()


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss of predicting token t+1 from positions <= t (labels -100 are not scored)."""
    shifted, targets = logits[:, :-1].float(), labels[:, 1:]
    nll = F.cross_entropy(shifted.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="none")
    return nll, (targets != -100).sum()


class CausalLM(Task):
    name = "causal_lm"
    pipeline_task = "text-generation"
    required_columns = ("text",)
    optional_columns = ("prompt",)
    non_model_keys = ("labels", "idx", "length", "prompt_length")

    def __init__(
        self,
        chat_template: bool = True,
        max_new_tokens: int = 32,
        num_samples: int = 2,
        metric: str = "val/perplexity",
        metric_mode: str = "min",
    ):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForCausalLM

        self.auto_class = AutoModelForCausalLM
        self.chat_template = chat_template
        self.max_new_tokens = max_new_tokens
        self.num_samples = num_samples
        self.with_prompts = False  # learnt from the training split; decides what predict inputs mean
        self._samples: list[dict] = []

    def labels_from(self, train_split) -> dict:
        return {**self.state_dict(), "with_prompts": "prompt" in train_split.column_names}

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "chat_template": self.chat_template}

    def state_dict(self) -> dict:
        return {"with_prompts": self.with_prompts, "chat_template": self.chat_template}

    def load_state_dict(self, state: dict) -> None:
        self.with_prompts = state["with_prompts"]
        self.chat_template = state.get("chat_template", self.chat_template)

    # ---- features
    def prompt_ids(self, prompt: str, tokenizer) -> list[int]:
        if self.chat_template and getattr(tokenizer, "chat_template", None):
            return list(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True, return_dict=False
                )
            )
        return tokenizer(prompt + "\n", add_special_tokens=False)["input_ids"]

    def preprocess(self, examples, tokenizer, max_length):
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id  # BERT: [SEP]
        if eos is None:
            raise TunelabError(
                f"The tokenizer of this backbone ({type(tokenizer).__name__}) has no end-of-sequence "
                "token, so a causal LM cannot learn where a text ends. Use a decoder backbone "
                "(e.g. model=smollm2)."
            )
        features = {"input_ids": [], "attention_mask": [], "labels": [], "prompt_length": [], "length": []}
        prompts = examples.get("prompt")
        for i, text in enumerate(examples["text"]):
            row = examples["idx"][i] if "idx" in examples else i
            if not isinstance(text, str):
                raise TunelabError(f"Row {row}: column 'text' holds {text!r}, not text. Fill or drop that row.")
            if self.with_prompts and prompts is None:  # predict: the text is a prompt to answer
                prompt, target = self.prompt_ids(text, tokenizer), []
            elif prompts is not None:
                if not isinstance(prompts[i], str) or not prompts[i].strip():
                    raise TunelabError(f"Row {row}: empty prompt. Fill or drop that row.")
                if not text.strip():
                    raise TunelabError(
                        f"Row {row}: empty target text for prompt {prompts[i][:60]!r}: nothing to "
                        "learn. Fill or drop that row."
                    )
                prompt = self.prompt_ids(prompts[i], tokenizer)
                target = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
            else:  # plain text: everything is scored; generation continues the text
                if not text.strip():
                    raise TunelabError(f"Row {row}: empty text: nothing to learn. Fill or drop that row.")
                prompt, target = [], tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
            if len(prompt) >= max_length:
                raise TunelabError(
                    f"Row {row}: the prompt is {len(prompt)} tokens, but data.max_length is "
                    f"{max_length}: no room for the response. Raise data.max_length or shorten it."
                )
            ids = (prompt + target)[:max_length]
            features["input_ids"].append(ids)
            features["attention_mask"].append([1] * len(ids))
            features["labels"].append([-100] * len(prompt) + ids[len(prompt) :])
            # generation starts after the prompt, or (plain text) before the final token
            features["prompt_length"].append(len(prompt) if prompt else max(1, len(ids) - 1))
            features["length"].append(len(ids))
        return features

    def collate(self, tokenizer):
        return PadCollator(tokenizer)

    # ---- objective and metrics
    def loss(self, outputs, batch):
        nll, count = token_nll(outputs.logits, batch["labels"])
        return nll.sum() / count.clamp(min=1)

    def loss_weight(self, batch):  # the loss is a mean over scored tokens
        return int((batch["labels"][:, 1:] != -100).sum())

    def metrics(self):
        from torchmetrics import MetricCollection

        return MetricCollection({"perplexity": Perplexity()})

    def update_metrics(self, metrics, model, outputs, batch):
        metrics.update(outputs.logits, batch["labels"])
        for i in range(len(batch["input_ids"])):
            if len(self._samples) < self.num_samples:
                n, scored = int(batch["prompt_length"][i]), batch["labels"][i]
                self._samples.append({"prompt_ids": batch["input_ids"][i, :n], "reference_ids": scored[scored != -100]})

    # ---- generation
    def generate(self, model, prompt_ids: torch.Tensor) -> str:
        tok = self.tokenizer
        out = model.generate(
            input_ids=prompt_ids[None],
            attention_mask=torch.ones_like(prompt_ids)[None],
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        return tok.decode(out[0, len(prompt_ids) :], skip_special_tokens=True)

    def on_eval_epoch_end(self, module, split):
        samples, self._samples = self._samples, []
        if (
            split != "val"
            or not samples
            or self.tokenizer is None
            or module.trainer.sanity_checking
            or not module.trainer.is_global_zero
        ):  # one writer under DDP
            return
        lines = []
        for sample in samples:
            lines.append(
                {
                    "epoch": module.current_epoch,
                    "step": module.global_step,
                    "prompt": self.tokenizer.decode(sample["prompt_ids"], skip_special_tokens=True),
                    "generated": self.generate(module.model, sample["prompt_ids"]),
                    "reference": self.tokenizer.decode(sample["reference_ids"], skip_special_tokens=True),
                }
            )
            print(f"[sample] {lines[-1]['prompt'][-80:]!r} -> {lines[-1]['generated']!r}")
        path = Path(module.trainer.default_root_dir) / "samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    def postprocess(self, model, outputs, batch):
        results = []
        for i in range(len(batch["input_ids"])):
            prompt = batch["input_ids"][i, : int(batch["prompt_length"][i])]
            results.append({"generated": self.generate(model, prompt)})
        return results
