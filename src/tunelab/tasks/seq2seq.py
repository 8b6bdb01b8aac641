"""Sequence-to-sequence generation (summarization, translation, string transduction).

Rows hold ``text`` (the source) and ``target``. The model is the backbone's ``AutoModelForSeq2SeqLM``
when it is an encoder-decoder (T5, BART, Marian, an exported bert2bert folder ...); an encoder-only
backbone (BERT, MiniLM) becomes a bert2bert ``EncoderDecoderModel``: the encoder and the decoder
both start from the backbone's weights (tunelab/tasks/bert2bert.py: ``cross_attention``, ``init_seed``).

Labels are the target's tokens (a BERT tokenizer's leading [CLS] dropped: it is the decoder's start
token) ending in the end-of-sequence token, truncated at ``max_target_length``; the loss is their
token-mean cross-entropy (teacher forcing). Sources are truncated at ``max_source_length``
(null: ``data.max_length``) after ``source_prefix`` is put before them (T5: "summarize: ").

Validation and test generate with the settings under ``generation`` (``num_beams``,
``max_new_tokens``, ``no_repeat_ngram_size``, ... any ``model.generate`` keyword); they are also
written into the model's generation config, so an exported folder generates the same way. Metrics
(0-100) compare the generated text with the target as the tokenizer gives it back (decoded labels,
as the Hugging Face seq2seq examples do: an uncased tokenizer lowercases both sides): exact_match,
bleu, rouge1/2/L (tunelab/tasks/generation_scores.py). A few generated samples are printed after
every validation and appended to ``<run>/samples.jsonl``.

``char_level: true`` spells source and target as space-separated characters (a space of the text
becomes ``_``) so a WordPiece model works letter by letter (e.g. singular -> plural); generated text
is joined back before scoring and in predictions.

Predict: every input ``text`` is a source; the answer is ``{"generated": ...}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from tunelab.errors import TunelabError
from tunelab.tasks.base import Task
from tunelab.tasks.bert2bert import CROSS_ATTENTION_INITS, bert2bert, special_tokens
from tunelab.tasks.generation_scores import SCORES, GenerationMetric, score, spell, unspell
from tunelab.tasks.padding import PadCollator

__all__ = ["SCORES", "Seq2Seq", "score", "spell", "unspell"]


def _plain(value) -> dict:
    from omegaconf import DictConfig, OmegaConf

    return dict(OmegaConf.to_container(value, resolve=True)) if isinstance(value, DictConfig) else dict(value or {})


class Seq2Seq(Task):
    name = "seq2seq"
    pipeline_task = None  # transformers 5 removed text2text-generation/summarization/translation pipelines
    required_columns = ("text", "target")
    non_model_keys = ("labels", "idx", "length", "reference")

    def __init__(
        self,
        generation: dict | None = None,
        max_source_length: int | None = None,
        max_target_length: int = 64,
        source_prefix: str = "",
        char_level: bool = False,
        num_samples: int = 3,
        cross_attention: str = "self",
        init_seed: int = 0,
        metric: str = "val/rougeL",
        metric_mode: str = "max",
    ):
        super().__init__(metric, metric_mode)
        from transformers import AutoModelForSeq2SeqLM

        self.auto_class = AutoModelForSeq2SeqLM
        self.generation = {
            "num_beams": 1,
            "max_new_tokens": max_target_length,
            "do_sample": False,
            **_plain(generation),
        }
        if self.generation.get("max_new_tokens") is None:
            self.generation["max_new_tokens"] = max_target_length
        for key, value in (("max_target_length", max_target_length), ("max_source_length", max_source_length)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise TunelabError(f"task.{key} must be an integer >= 2, got {value!r}.")
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.source_prefix = source_prefix or ""
        self.char_level = bool(char_level)
        self.num_samples = num_samples
        if cross_attention not in CROSS_ATTENTION_INITS:
            raise TunelabError(
                f"task.cross_attention must be one of {list(CROSS_ATTENTION_INITS)}, got {cross_attention!r}."
            )
        self.cross_attention = cross_attention
        self.init_seed = init_seed
        self._samples: list[dict] = []

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            "max_source_length": self.max_source_length,
            "max_target_length": self.max_target_length,
            "source_prefix": self.source_prefix,
            "char_level": self.char_level,
        }

    def state_dict(self) -> dict:
        return {"char_level": self.char_level}

    def load_state_dict(self, state: dict) -> None:
        self.char_level = state.get("char_level", self.char_level)

    # ---- the model
    def build_model(
        self,
        backbone: str,
        trust_remote_code: bool = False,
        pretrained: bool = True,
        dropout: dict | None = None,
        **kwargs,
    ):
        from transformers import AutoConfig

        from tunelab.model.backbone import (
            check_remote_code,
            load_model,
            load_tokenizer,
            resolve_backbone,
        )

        resolved = resolve_backbone(backbone)
        check_remote_code(backbone, resolved, trust_remote_code)
        try:
            config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError):  # load_model explains it
            config = None
        if config is None or getattr(config, "is_encoder_decoder", False):
            model = load_model(
                self.auto_class,
                backbone,
                trust_remote_code=trust_remote_code,
                pretrained=pretrained,
                dropout=dropout,
                **kwargs,
            )
        else:
            model = bert2bert(backbone, resolved, config, pretrained, dropout, self.cross_attention, self.init_seed)
        tokenizer = load_tokenizer(backbone, trust_remote_code=trust_remote_code)
        special_tokens(model, tokenizer)
        try:
            unknown = model.generation_config.update(**self.generation)
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            model.generation_config.validate()
        except (ValueError, TypeError) as err:
            raise TunelabError(
                f"task.generation: {err}. The keys are model.generate's (num_beams, max_new_tokens, "
                "no_repeat_ngram_size, length_penalty, ...)."
            ) from None
        return model

    # ---- features
    def _target_ids(self, text: str, tokenizer) -> list[int]:
        ids = tokenizer(text, truncation=True, max_length=self.max_target_length + 1)["input_ids"]
        bert_style = tokenizer.bos_token_id is None and tokenizer.cls_token_id is not None
        if bert_style and ids and ids[0] == tokenizer.cls_token_id:
            ids = ids[1:]  # BERT: [CLS] is the decoder's start token, not a target
        else:
            ids = ids[: self.max_target_length]
        eos = (
            tokenizer.sep_token_id
            if tokenizer.bos_token_id is None and tokenizer.sep_token_id is not None
            else tokenizer.eos_token_id
        )
        if eos is not None and ids and ids[-1] != eos:  # truncated: keep the end-of-sequence token
            ids = ids[:-1] + [eos]
        return ids

    def preprocess(self, examples, tokenizer, max_length):
        sources, targets = examples["text"], examples.get("target")
        features = {"input_ids": [], "attention_mask": [], "length": []}
        if targets is not None:
            features["labels"] = []
        for i, source in enumerate(sources):
            row = examples["idx"][i] if "idx" in examples else i
            if not isinstance(source, str) or not source.strip():
                raise TunelabError(
                    f"Row {row}: empty source text ({source!r}): nothing to generate from. Fill or drop that row."
                )
            source = self.source_prefix + source
            enc = tokenizer(
                spell(source) if self.char_level else source,
                truncation=True,
                max_length=self.max_source_length or max_length,
            )
            features["input_ids"].append(enc["input_ids"])
            features["attention_mask"].append(enc["attention_mask"])
            length = len(enc["input_ids"])
            if targets is not None:
                target = targets[i]
                if not isinstance(target, str) or not target.strip():
                    raise TunelabError(
                        f"Row {row}: empty target text ({target!r}) for source {source[:60]!r}: "
                        "nothing to learn. Fill or drop that row."
                    )
                labels = self._target_ids(spell(target) if self.char_level else target, tokenizer)
                features["labels"].append(labels)
                # scored as written, not as the tokenizer decodes it
                features.setdefault("reference", []).append(target)
                length += len(labels)
            features["length"].append(length)
        return features

    def collate(self, tokenizer):
        return PadCollator(tokenizer, passthrough=("reference",))

    # ---- objective
    @staticmethod
    def decoder_inputs(model, labels: torch.Tensor) -> torch.Tensor:
        """Labels shifted right behind the decoder start token; -100 becomes padding (teacher forcing)."""
        from transformers.models.encoder_decoder.modeling_encoder_decoder import (
            shift_tokens_right,
        )

        from tunelab.tuning.parts import unwrap

        config = unwrap(model).config
        start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            start = unwrap(model).generation_config.decoder_start_token_id
        pad = getattr(config, "pad_token_id", None)
        return shift_tokens_right(labels, 0 if pad is None else pad, start)

    def forward(self, model, batch):
        if "labels" not in batch:  # predict: nothing to score; postprocess generates
            return None
        return model(**self.model_inputs(batch), decoder_input_ids=self.decoder_inputs(model, batch["labels"]))

    def loss(self, outputs, batch):
        logits = outputs.logits.float()
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    # ---- generation
    def decode(self, ids) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
        return unspell(text) if self.char_level else text.strip()

    def generate(self, model, batch) -> list[str]:
        from tunelab.tuning.parts import unwrap

        was_training = model.training
        model.eval()
        with torch.no_grad():
            out = unwrap(model).generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **self.generation
            )
        model.train(was_training)
        return [self.decode(row) for row in out]

    def references(self, batch) -> list[str]:
        if "reference" in batch:  # the raw target: an uncased tokenizer's lost accents and case count as errors
            return [" ".join(r.split()) for r in batch["reference"]]
        return [self.decode(row[row != -100]) for row in batch["labels"]]

    # ---- metrics
    def loss_weight(self, batch):  # the loss is a mean over scored tokens
        return int((batch["labels"] != -100).sum())

    def metrics(self):
        from torchmetrics import MetricCollection

        return MetricCollection({name: GenerationMetric(name) for name in SCORES}, compute_groups=False)

    def update_metrics(self, metrics, model, outputs, batch):
        generated, references = self.generate(model, batch), self.references(batch)
        metrics.update(generated, references)
        for i in range(min(len(generated), self.num_samples - len(self._samples))):
            self._samples.append(
                {"source": self.decode(batch["input_ids"][i]), "generated": generated[i], "reference": references[i]}
            )

    def on_eval_epoch_end(self, module, split):
        samples, self._samples = self._samples, []
        if (
            split != "val" or not samples or module.trainer.sanity_checking or not module.trainer.is_global_zero
        ):  # one writer under DDP
            return
        lines = [{"epoch": module.current_epoch, "step": module.global_step, **s} for s in samples]
        for line in lines:
            print(f"[sample] {line['source'][:80]!r} -> {line['generated']!r} (reference {line['reference'][:80]!r})")
        path = Path(module.trainer.default_root_dir) / "samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    def postprocess(self, model, outputs, batch):
        return [{"generated": text} for text in self.generate(model, batch)]
