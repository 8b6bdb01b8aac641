"""A LoRA run end to end: a checkpoint holding only what trained, a merged export equal to the
unmerged model, and an adapter-only export that PeftModel.from_pretrained reloads."""

from __future__ import annotations

import torch
from conftest import quick, read_metrics, train_in_process

from tunelab.export import export_run
from tunelab.rundir import load_run


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
