"""Causal LM head: prompt masking (chat template), loss, perplexity, samples, predict and export."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers.runs import quick, read_metrics, train_in_process
from helpers.tasks import loss_falls
from tunelab.errors import TunelabError
from tunelab.model.backbone import load_tokenizer
from tunelab.tasks import CausalLM

ROWS = [
    {"prompt": "capital of france", "text": "paris"},
    {"prompt": "capital of italy", "text": "rome"},
    {"prompt": "capital of spain", "text": "madrid"},
]


def test_prompt_tokens_are_masked_and_wrapped_in_the_chat_template(tiny_llama):
    tokenizer = load_tokenizer(tiny_llama)
    task = CausalLM()
    task.setup(tokenizer, task.labels_from(type("Split", (), {"column_names": ["prompt", "text"]})()))
    f = task.preprocess({"prompt": ["capital of france"], "text": ["paris"]}, tokenizer, 64)
    ids, labels, n = f["input_ids"][0], f["labels"][0], f["prompt_length"][0]
    assert tokenizer.decode(ids[:n]) == "< user > capital of france < assistant >"
    assert labels[:n] == [-100] * n
    assert labels[n:] == tokenizer("paris", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    # predict: a lone text is a prompt to answer, nothing scored
    p = task.preprocess({"text": ["capital of peru"]}, tokenizer, 64)
    assert p["labels"][0] == [-100] * len(p["input_ids"][0]) and p["prompt_length"][0] == len(p["input_ids"][0])


def test_loss_falls_on_a_fixed_batch(tiny_llama):
    task = CausalLM()
    losses, _, batch = loss_falls(tiny_llama, task, ROWS, steps=40)
    assert task.with_prompts
    assert losses[-1] < 0.3 * losses[0]
    assert (batch["labels"] == -100).sum() > 0


def test_perplexity_is_exp_of_the_token_mean_over_the_split():
    task = CausalLM()
    metrics = task.metrics()
    # vocab 2; position t predicts token t+1. Row 1 scores tokens at 1 and 2, row 2 only token 1.
    logits = torch.zeros(2, 3, 2)
    logits[0, 0] = torch.tensor([0.0, math.log(3)])  # p(token 1) = 3/4
    logits[1, 0] = torch.tensor([math.log(3), 0.0])  # p(token 1) = 1/4
    labels = torch.tensor([[-100, 1, 0], [-100, 1, -100]])  # row 1, position 1: uniform logits, p = 1/2
    task.update_metrics(
        metrics,
        None,
        type("Out", (), {"logits": logits})(),
        {"labels": labels, "input_ids": labels, "prompt_length": torch.tensor([1, 1])},
    )
    nll = -(math.log(3 / 4) + math.log(1 / 2) + math.log(1 / 4))
    assert metrics.compute()["perplexity"].item() == pytest.approx(math.exp(nll / 3), rel=1e-5)
    assert task.loss(type("Out", (), {"logits": logits})(), {"labels": labels}).item() == pytest.approx(
        nll / 3, rel=1e-5
    )


@pytest.mark.parametrize(
    "row,max_length,message",
    [
        ({"prompt": "capital of france", "text": "  "}, 64, r"Row 0: empty target text for prompt 'capital of france'"),
        (
            {"prompt": "a very long prompt " * 20, "text": "yes"},
            32,
            r"the prompt is \d+ tokens, but data.max_length is 32",
        ),
    ],
)
def test_bad_rows_are_named(tiny_llama, row, max_length, message):
    task = CausalLM()
    task.with_prompts = True
    with pytest.raises(TunelabError, match=message):
        task.preprocess({k: [v] for k, v in row.items()}, load_tokenizer(tiny_llama), max_length)


def test_lee_instruction_run_logs_samples_predicts_and_exports(tiny_llama, tmp_path, capsys):
    from transformers import pipeline

    from tunelab.commands.export import export_run
    from tunelab.commands.predict import predict_rows
    from tunelab.run.record import load_run

    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_llama,
            run,
            "task=causal_lm",
            "data=lee_instructions",
            "task.max_new_tokens=4",
            "data.max_samples={train: 16, validation: 8, test: 8}",
        )
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    assert read_metrics(run)["metrics"]["test/perplexity"] > 1
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and samples[0]["prompt"].startswith("< user > write the next sentence")
    _, module, datamodule, _ = load_run(str(run))
    [answer] = predict_rows(module, datamodule, [{"text": "capital of france"}])
    assert isinstance(answer["generated"], str)
    folder = export_run(str(run), str(tmp_path / "export"))
    generator = pipeline("text-generation", model=str(folder))
    assert generator("hello", max_new_tokens=3, do_sample=False)[0]["generated_text"].startswith("hello")
