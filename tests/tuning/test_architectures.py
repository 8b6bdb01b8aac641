"""LoRA and freezing on a decoder (tiny Llama, tied LM head) and an encoder-decoder (tiny T5):
the right modules are targeted, only adapters train, merged weights give the same logits."""

from __future__ import annotations

import pytest
import torch

from tunelab.tuning import apply_tuning, parts
from tunelab.tuning.peft_methods import PeftMethod


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
        )
    )


def tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    return T5ForConditionalGeneration(
        T5Config(
            vocab_size=64,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
        )
    )


def lm_batch(model):
    ids = torch.randint(1, 64, (4, 10), generator=torch.Generator().manual_seed(0))
    if model.config.is_encoder_decoder:
        return {"input_ids": ids, "labels": ids.flip(1)}
    return {"input_ids": ids, "labels": ids}


@pytest.mark.parametrize(
    "build,targets,n_blocks", [(tiny_llama, ("q_proj", "v_proj"), 2), (tiny_t5, ("q", "v"), 4)], ids=["llama", "t5"]
)
def test_lora_on_causal_and_seq2seq_lm(build, targets, n_blocks):
    model = build()
    assert len(parts.blocks(model)) == n_blocks  # T5: encoder blocks, then decoder blocks
    assert parts.head_names(model) == []  # the LM head is tied to the embeddings: not trained alone
    method = PeftMethod("lora", r=4)
    peft_model = method.apply(model)
    lora_targets = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in peft_model.named_parameters() if "lora_A" in n}
    assert lora_targets == set(targets)

    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    batch = lm_batch(model)
    for _ in range(3):
        peft_model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in peft_model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in n for n in changed)
    assert changed == {n for n, p in peft_model.named_parameters() if p.requires_grad}

    peft_model.eval()
    with torch.no_grad():
        unmerged = peft_model(**batch).logits
        merged = method.merged(peft_model)(**batch).logits
    assert torch.allclose(unmerged, merged, atol=1e-5)


def test_freezing_bottom_blocks_of_a_decoder():
    model = apply_tuning(tiny_llama(), freeze={"layers": 1})
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("model.layers.0.") for n in frozen) and "model.embed_tokens.weight" in frozen
    assert not any(n.startswith("model.layers.1.") for n in frozen)


def test_negative_layers_keep_only_the_top_blocks_trainable():
    def frozen(layers):
        return {
            n
            for n, p in apply_tuning(tiny_llama(), freeze={"layers": layers}).named_parameters()
            if not p.requires_grad
        }

    assert frozen(-1) == frozen(1)
    from tunelab.errors import TunelabError

    with pytest.raises(TunelabError, match="keeps the top 3 blocks trainable, but the llama backbone has 2 blocks"):
        frozen(-3)
