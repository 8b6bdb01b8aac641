"""A LoRA run end to end: a checkpoint holding only what trained, a merged export equal to the
unmerged model, and an adapter-only export that PeftModel.from_pretrained reloads."""

from __future__ import annotations

import torch

from helpers.runs import quick, read_metrics, train_in_process
from tunelab.commands.export import export_run
from tunelab.run.record import load_run


def _logits(model, batch):
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_lora_run_checkpoint_merged_and_adapter_exports(tiny_backbone, outputs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    run = tmp_path / "run"
    assert train_in_process(*quick(tiny_backbone, run, "peft=lora", "optimizer.lr=1e-2")) == 0
    summary = read_metrics(run)
    params = summary["parameters"]
    assert params["groups"]["adapter"]["trainable"] == 2 * 2 * 8 * 64  # r=8 on query, value of 2 blocks
    assert params["trainable"] == params["groups"]["adapter"]["trainable"] + params["groups"]["head"]["trainable"]

    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    keys = set(checkpoint["state_dict"])
    assert checkpoint["tunelab"]["partial"] is True
    assert keys and all("lora_" in k or "modules_to_save" in k for k in keys), sorted(keys)[:5]
    assert 0 < summary["checkpoint_mb"] < 0.2  # the tiny backbone alone is ~4 MB

    _, module, datamodule, _ = load_run(str(run))
    datamodule.set_predict_inputs([{"text": "a moving, funny film"}, {"text": "dull and far too long"}])
    batch = module.task.model_inputs(next(iter(datamodule.predict_dataloader())))
    unmerged = _logits(module.model, batch)
    fresh = AutoModelForSequenceClassification.from_pretrained(tiny_backbone, num_labels=2)
    assert not torch.allclose(_logits(fresh, batch), unmerged, atol=1e-3)  # the restored run is the trained one

    adapter = export_run(str(run), str(tmp_path / "adapter"), adapter=True)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    base = AutoModelForSequenceClassification.from_pretrained(tiny_backbone, num_labels=2)
    reloaded = PeftModel.from_pretrained(base, str(adapter))
    assert torch.allclose(_logits(reloaded, batch), unmerged, atol=1e-5)

    merged = export_run(str(run), str(tmp_path / "merged"))
    assert not (merged / "adapter_config.json").exists()
    plain = AutoModelForSequenceClassification.from_pretrained(str(merged))
    assert not any("lora" in n for n, _ in plain.named_parameters())
    assert torch.allclose(_logits(plain, batch), unmerged, atol=1e-5)


def test_adapter_export_of_a_run_without_adapter_says_to_export_merged():
    import pytest

    from tunelab.errors import TunelabError
    from tunelab.tuning.freeze import BitFit

    with pytest.raises(TunelabError, match="trains no adapter.*--merged"):
        BitFit().save_adapter(torch.nn.Linear(2, 2), "/tmp/never-written")


LONG = " ".join(["the film is long, slow and yet strangely moving in places, with a cast that tries hard"] * 40)


def test_export_pipeline_truncation_agrees_with_predict_on_long_inputs(
    tiny_backbone, outputs, tmp_path, mr_csv, capsys
):
    """Issue 17.4-5: the export carries the trained max length (pipeline(..., truncation=True) cuts where predict
    does); predict reads JSON rows under the training column name ("review")."""
    import json

    from transformers import AutoTokenizer, pipeline

    from tunelab.cli import main

    run = tmp_path / "run"
    assert (
        train_in_process(
            *quick(
                tiny_backbone,
                run,
                "data=files",
                f"data.loader.train={mr_csv}",
                "data.columns.text=review",
                "data.columns.label=sentiment",
                "data.max_length=48",
            )
        )
        == 0
    )
    texts = [LONG, "a dull film " * 200, "fine"]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"review": t}) + "\n" for t in texts))
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(inputs)]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(predicted) == 3

    folder = export_run(str(run), str(tmp_path / "export"))
    assert AutoTokenizer.from_pretrained(str(folder)).model_max_length == 48
    assert len(AutoTokenizer.from_pretrained(str(folder))(LONG)["input_ids"]) > 512  # longer than the model allows
    pipe = pipeline("text-classification", model=str(folder))
    for text, ours in zip(texts, predicted):
        theirs = pipe(text, truncation=True)[0]
        assert theirs["label"] == ours["label"]
        assert abs(theirs["score"] - ours["score"]) < 1e-5

    card = (folder / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "https://github.com/" not in card
    assert "truncation=True" in card and "| accuracy | test |" in card
    assert '"train": "reviews.csv"' in card and '"text": "review"' in card


def test_seq2seq_card_names_backbone_and_letter_spaced_input():
    from omegaconf import OmegaConf

    from tunelab.run.model_card import model_card
    from tunelab.tasks.seq2seq import Seq2Seq

    cfg = OmegaConf.create(
        {
            "model": {"backbone": "minilm"},
            "data": {
                "name": "files",
                "max_length": 32,
                "split_ratios": [0.8, 0.1, 0.1],
                "split_seed": 42,
                "loader": {"train": "/data/plurals.jsonl"},
                "columns": {"text": "singular", "target": "plural", "label": None},
            },
        }
    )
    summary = {
        "metrics": {"test/exact_match": 91.0, "val/exact_match": 90.0},
        "epochs": 3,
        "global_steps": 30,
        "fit_seconds": 12.0,
        "seed": 42,
        "data": {"sizes": {"train": 80, "validation": 10, "test": 10}},
        "monitor": {"metric": "val/exact_match"},
    }
    card = model_card(cfg, summary, Seq2Seq(char_level=True))
    assert "pipeline_tag: text2text-generation" in card
    assert "sentence-transformers/all-MiniLM-L6-v2" in card and "fine-tuned from minilm" not in card
    assert "letter-spaced" in card and "`b i g _ c a t`" in card
    assert "| exact_match | test | 91.0000 |" in card and '"train": "plurals.jsonl"' in card
