"""bert2bert: an encoder-only backbone (BERT, MiniLM) as encoder and decoder of an ``EncoderDecoderModel``.

The decoder's new cross-attention starts as a copy of the same block's pretrained self-attention
(``cross_attention="self"``; its position-following heads let a decoder copy from the source early in
training) or random (``"random"``, the Hugging Face default). What the checkpoint lacks (the LM-head
transform, random cross-attention) is drawn with ``init_seed``, so a partial (PEFT) checkpoint finds
the same weights again. bert2bert starts decoding from [CLS] and stops at [SEP] (``special_tokens``).
"""

from __future__ import annotations

import re

import torch

from tunelab.errors import TunelabError

CROSS_ATTENTION_INITS = ("self", "random")  # copy each decoder block's self-attention, or random


def bert2bert(
    name: str, resolved: str, config, pretrained: bool, dropout: dict | None, cross_attention: str, init_seed: int
):
    """An encoder-only backbone as encoder and decoder (cross-attention added: see ``cross_attention``)."""
    import copy

    from transformers import EncoderDecoderConfig, EncoderDecoderModel

    from tunelab.model.backbone import dropout_overrides

    archs = " ".join(getattr(config, "architectures", None) or [])
    if getattr(config, "is_decoder", False) or re.search(r"ForCausalLM|LMHeadModel", archs):
        raise TunelabError(
            f"Backbone '{name}' ({config.model_type}) is a decoder-only language model; "
            "task=seq2seq "
            "needs an encoder-decoder (T5, BART, ...) or an encoder (BERT-like, used as bert2bert). "
            "For a decoder-only model use task=causal_lm with data.columns.prompt."
        )
    for key, value in dropout_overrides(config, **(dropout or {})).items():
        setattr(config, key, value)
    encoder_config = copy.deepcopy(config)
    encoder_config.is_decoder, encoder_config.add_cross_attention = False, False
    decoder_config = copy.deepcopy(config)
    decoder_config.is_decoder, decoder_config.add_cross_attention = True, True
    try:
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)  # the new (random) weights are the same in every run
            if not pretrained:  # the weights come from a checkpoint right after
                return EncoderDecoderModel(
                    EncoderDecoderConfig.from_encoder_decoder_configs(encoder_config, decoder_config)
                )
            model = EncoderDecoderModel.from_encoder_decoder_pretrained(
                resolved, resolved, encoder_config=encoder_config, decoder_config=decoder_config
            )
    except (ValueError, TypeError, OSError, KeyError) as err:
        raise TunelabError(
            f"Backbone '{name}' ({config.model_type}) cannot be used as a bert2bert "
            f"encoder-decoder: {str(err)[:400]}. Use an encoder-decoder backbone (T5, BART) or a "
            "BERT-like encoder."
        ) from err
    if cross_attention == "self":
        copied = 0
        for block in model.decoder.modules():
            cross, own = getattr(block, "crossattention", None), getattr(block, "attention", None)
            if cross is not None and own is not None and type(cross) is type(own):
                cross.load_state_dict(own.state_dict())
                copied += 1
        if not copied:
            raise TunelabError(
                f"task.cross_attention=self: the {config.model_type} decoder has no blocks with "
                "'attention' and 'crossattention' of one type to copy. "
                "Use task.cross_attention=random."
            )
    return model


def special_tokens(model, tokenizer) -> None:
    """bert2bert: start from [CLS], stop at [SEP], pad with [PAD]; others keep their own ids."""
    config, gen = model.config, model.generation_config
    if config.model_type == "encoder-decoder":
        start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if start is None or eos is None or tokenizer.pad_token_id is None:
            raise TunelabError(
                f"The tokenizer {type(tokenizer).__name__} has no [CLS]/[SEP]/[PAD] "
                "(or bos/eos/pad) "
                "tokens for a bert2bert decoder to start, stop and pad with."
            )
        config.decoder_start_token_id, config.eos_token_id = start, eos
        config.pad_token_id, config.vocab_size = tokenizer.pad_token_id, config.decoder.vocab_size
        gen.decoder_start_token_id, gen.bos_token_id = start, start
        gen.eos_token_id, gen.pad_token_id = eos, tokenizer.pad_token_id
    if getattr(config, "decoder_start_token_id", None) is None and gen.decoder_start_token_id is None:
        raise TunelabError(f"The {config.model_type} model config has no decoder_start_token_id: it cannot generate.")
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
