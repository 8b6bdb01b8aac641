"""FSDP2 on CPU with 2 processes: train, sharded checkpoint, resume from it, export a consolidated folder."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.runs import tiny_run, tunelab


def test_fsdp_trains_resumes_and_exports_a_consolidated_folder(tiny_backbone, tmp_path):
    run = tmp_path / "run"
    first = tunelab("train", "trainer=fsdp", *tiny_run(tiny_backbone), f"hydra.run.dir={run}", outputs=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_dir() and (last / ".metadata").exists()
    assert sorted(p.name for p in last.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # one shard per rank
    steps_one_epoch = json.loads((run / "metrics.json").read_text())["global_steps"]

    again = tunelab(
        "train",
        "trainer=fsdp",
        *tiny_run(tiny_backbone),
        f"hydra.run.dir={run}",
        "ckpt_path=last",
        "trainer.max_epochs=2",
        outputs=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Restored all states from the checkpoint" in (run / "train.log").read_text()
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["global_steps"] == 2 * steps_one_epoch  # continued, not restarted

    from transformers import AutoModelForSequenceClassification

    from tunelab.commands.export import export_run
    from tunelab.run.record import load_run

    folder = export_run(str(run), str(tmp_path / "export"))
    exported = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    _, module, datamodule, _ = load_run(str(run))  # the same sharded checkpoint, consolidated in memory
    datamodule.setup("test")
    correct = total = 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            logits = exported(**inputs).logits
            torch.testing.assert_close(logits, module.model(**inputs).logits, atol=1e-5, rtol=1e-5)
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            total += len(logits)
    # the exported model scores what the sharded model scored when tested on 2 processes
    assert total == summary["data"]["sizes"]["test"]
    assert correct / total == summary["metrics"]["test/accuracy"]

    # `tunelab predict` reads the real sharded checkpoint through the safe reader (no plain unpickling)
    from transformers import AutoTokenizer

    from tunelab.cli import main

    texts, predicted = ["a fine film", "an awful, boring one"], tmp_path / "predicted.jsonl"
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "texts.txt"), "--output", str(predicted)]) == 0
    rows = [json.loads(line) for line in predicted.read_text().splitlines()]
    with torch.no_grad():
        probs = exported(
            **AutoTokenizer.from_pretrained(tiny_backbone)(texts, return_tensors="pt", padding=True)
        ).logits
    assert [r["score"] for r in rows] == pytest.approx(probs.softmax(-1).max(-1).values.tolist(), abs=1e-5)
