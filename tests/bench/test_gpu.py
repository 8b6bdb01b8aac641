"""bench/gpu.py: its MFU formula, the padding-free packing it measures (same loss as padded batches),
and its --quick mode end to end on the CPU (plumbing: every arm reports finite positive numbers)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from helpers.runs import ROOT

sys.path.insert(0, str(ROOT / "bench"))  # bench/ is scripts, not a package: as `python bench/gpu.py` sees it

import gpu  # noqa: E402
import gpu_arms  # noqa: E402

TEXTS = ["a fine film", "dull , long and far too pleased with itself", "yes", "the cast is wonderful here"]


def test_mfu_is_six_flops_per_parameter_per_token_over_the_peak():
    # 100M parameters x 50k tokens/s x 6 = 3e13 FLOP/s: 3% of a 1 PFLOP/s peak
    assert gpu.mfu(100e6, 500_000, 10.0, 1e15) == pytest.approx(0.03)
    assert gpu.mfu(1, 1, 1, 6) == 1.0
    assert gpu.peak_flops("NVIDIA H200")[0] == pytest.approx(989.4e12)
    assert gpu.peak_flops("NVIDIA H100 PCIe")[0] == pytest.approx(756e12)
    assert gpu.peak_flops("NVIDIA H100 80GB HBM3")[0] == pytest.approx(989.4e12)
    assert gpu.peak_flops("Some GPU", 100.0)[0] == 100e12
    with pytest.raises(SystemExit, match="--peak-tflops"):
        gpu.peak_flops("Some GPU")


def test_packed_batch_has_the_padded_batch_loss(tiny_llama):
    from transformers import AutoModelForCausalLM

    from tunelab.model.backbone import load_tokenizer
    from tunelab.tasks.causal_lm import CausalLM

    tokenizer = load_tokenizer(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    rows = gpu_arms.lm_features(TEXTS, tokenizer, 128)
    padded = gpu_arms.collator("padded", tokenizer)(rows)
    packed = gpu_arms.collator("packed", tokenizer)(rows)
    lengths = [len(r["input_ids"]) for r in rows]
    assert padded["input_ids"].shape == (4, max(lengths)) and packed["input_ids"].shape == (1, sum(lengths))
    # positions restart at every sentence; its first label is -100, so the same tokens are scored
    starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
    assert (packed["position_ids"][0, starts] == 0).all() and (packed["labels"][0, starts] == -100).all()
    assert CausalLM().loss_weight(packed) == CausalLM().loss_weight(padded) == sum(lengths) - len(lengths)

    def loss(batch, use_cache=False):
        with torch.no_grad():
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            return float(CausalLM().loss(model(**inputs, use_cache=use_cache), batch))

    assert loss(packed) == pytest.approx(loss(padded), abs=1e-5)
    # the sentences see each other (a different loss) without the restarting positions, and also with a
    # KV cache: transformers reads packing from position_ids only when there is no cache (use_cache=False)
    assert abs(loss({k: v for k, v in packed.items() if k != "position_ids"}) - loss(padded)) > 1e-3
    assert abs(loss(packed, use_cache=True) - loss(padded)) > 1e-3


@pytest.mark.slow
def test_quick_gpu_benchmark_reports_every_arm(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        # --no-compile: minutes of CPU compiling; compiled training is checked in tests/model/test_compile.py
        [
            sys.executable,
            str(ROOT / "bench" / "gpu.py"),
            "--quick",
            "--no-compile",
            "--out",
            str(tmp_path),
            "--name",
            "q",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "q.json").read_text())
    arms = [
        "tiny:tunelab",
        "tiny:hf",
        "packing:cpu:padded",
        "packing:cpu:packed",
    ]
    assert sorted(report["summary"]) == sorted(arms)
    for arm in arms:
        row = report["summary"][arm]
        for key in ("samples_per_s", "real_tokens_per_s", "mfu", "peak_memory_mb", "first_step_s", "params"):
            assert math.isfinite(row[key]) and row[key] > 0, (arm, key, row[key])
        assert row["attn_implementation"] == "sdpa"
        # the table's MFU is the formula on the arm's own timed window
        run = report["runs"][arm][0]
        assert row["mfu"] == pytest.approx(
            gpu.mfu(run["params"], run["measured_real_tokens"], run["measured_s"], 1e12), rel=1e-9
        )
    # the same batches in tunelab and the Trainer; packing removed the padding, padded batches had some
    batches = {arm: json.dumps(report["runs"][arm][0]["batches"][:5]) for arm in arms[:2]}
    assert len(set(batches.values())) == 1 and report["same_batches"] == {"tiny": True}
    assert report["packed_loss_max_diff"]["cpu"] < 1e-3  # the same rows, the same loss, step after step
    assert report["summary"]["packing:cpu:packed"]["pad_fraction"] == 0
    assert report["summary"]["packing:cpu:padded"]["pad_fraction"] > 0
    md = (tmp_path / "q.md").read_text()
    assert all(f"| {arm} |" in md for arm in arms) and "plumbing" in md
