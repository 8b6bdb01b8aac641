"""Issue 21, item 3: int8 dynamic quantization for CPU serving, against fp32, on a trained run's test split.

    python bench/int8.py RUN                      # export RUN to a scratch folder, time every arm -> a markdown table
    python bench/int8.py RUN --quick              # a tiny run: at most 64 test rows, one round
    python bench/int8.py RUN --out bench/results  # also <out>/int8.{md,json}

Arms, all on the same batches (tunelab's test loader: length-sorted, dynamically padded, eval batch size), one
thread each (torch.set_num_threads / onnxruntime intra- and inter-op threads), interleaved over --rounds, the
median reported:

  pytorch_fp32      the exported folder's model in PyTorch (what `tunelab predict` runs)
  onnxruntime_fp32  model.onnx (`tunelab export --onnx`)
  onnxruntime_int8  model.int8.onnx (`tunelab export --int8`: onnxruntime quantize_dynamic, per-channel int8 weights)
  torch_ao_int8     torch.ao.quantization.quantize_dynamic on the nn.Linear layers (deprecated in torch, still
                    there in 2.13)

For each: test samples/s (model forward only; tokenization is the same for all), test accuracy, model size on
disk (MB), and against pytorch_fp32 the share of labels that agree and the largest probability difference.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
ARMS = ("pytorch_fp32", "onnxruntime_fp32", "onnxruntime_int8", "torch_ao_int8")


def test_batches(run: str, limit: int | None):
    """The run's test split as tunelab batches (numpy int64 inputs, labels)."""
    from tunelab.run.record import load_run

    _, _, datamodule, _ = load_run(run)
    datamodule.setup("test")
    if limit:
        datamodule.splits["test"] = datamodule.splits["test"].select(range(min(limit, len(datamodule.splits["test"]))))
    return [
        (
            {k: v.numpy() for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
            batch["labels"].numpy(),
        )
        for batch in datamodule.test_dataloader()
    ]


def build_arms(folder: Path):
    """name -> (predict(inputs) -> logits, size in MB)."""
    import warnings

    import torch

    from tunelab.deploy.onnx import load_for_onnx, session

    model, _, names = load_for_onnx(folder)

    def torch_predict(net):
        def predict(inputs):
            with torch.inference_mode():
                return net(**{n: torch.from_numpy(inputs[n]) for n in names}).logits.numpy()

        return predict

    def onnx_predict(path):
        sess = session(path, threads=1)
        return lambda inputs: sess.run(["logits"], {n: inputs[n] for n in names})[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    buffer = io.BytesIO()
    torch.save(quantized.state_dict(), buffer)
    mb = lambda path: path.stat().st_size / 2**20  # noqa: E731
    return {
        "pytorch_fp32": (torch_predict(model), mb(folder / "model.safetensors")),
        "onnxruntime_fp32": (onnx_predict(folder / "model.onnx"), mb(folder / "model.onnx")),
        "onnxruntime_int8": (onnx_predict(folder / "model.int8.onnx"), mb(folder / "model.int8.onnx")),
        "torch_ao_int8": (torch_predict(quantized), len(buffer.getvalue()) / 2**20),
    }


def time_arm(predict, batches) -> tuple[float, list]:
    predict(batches[0][0])  # warm-up: first-call allocations
    start = time.perf_counter()
    logits = [predict(inputs) for inputs, _ in batches]
    return time.perf_counter() - start, logits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished sequence-classification run directory")
    parser.add_argument("--quick", action="store_true", help="at most 64 test rows, one round (tiny runs, tests)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--export-dir", help="where to export the run (default: a scratch folder)")
    parser.add_argument("--out", help="also write <out>/int8.md and <out>/int8.json")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from tunelab.commands.export import export_run
    from tunelab.deploy.quantize import agreement

    torch.set_num_threads(1)
    folder = Path(args.export_dir or tempfile.mkdtemp(prefix="tunelab-int8-"))
    export_run(args.run, str(folder), force=True, int8=True)
    batches = test_batches(args.run, 64 if args.quick else None)
    labels = np.concatenate([y for _, y in batches])
    arms = build_arms(folder)
    rounds = 1 if args.quick else args.rounds
    load_before = os.getloadavg()[0]
    seconds = {arm: [] for arm in ARMS}
    logits = {}
    for _ in range(rounds):
        for arm in ARMS:  # interleaved: a slow spell on the machine falls on every arm
            took, logits[arm] = time_arm(arms[arm][0], batches)
            seconds[arm].append(took)

    masks = [inputs["attention_mask"] for inputs, _ in batches]
    rows = []
    for arm in ARMS:
        predicted = np.concatenate([x.argmax(-1) for x in logits[arm]])
        vs_fp32 = agreement(logits["pytorch_fp32"], logits[arm], masks)
        rows.append(
            {
                "arm": arm,
                "samples_per_s": len(labels) / statistics.median(seconds[arm]),
                "seconds": seconds[arm],
                "test_accuracy": float((predicted == labels).mean()),
                "size_mb": arms[arm][1],
                "label_agreement": vs_fp32.label_agreement,
                "max_prob_diff": vs_fp32.max_prob_diff,
            }
        )
    load = (load_before, os.getloadavg()[0])
    table = markdown(rows, len(labels), rounds, args.run, load)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "int8.md").write_text(table + "\n")
        meta = {
            "run": str(args.run),
            "test_rows": len(labels),
            "rounds": rounds,
            "threads": 1,
            "cpu": os.cpu_count(),
            "load_average": load,
        }
        (out / "int8.json").write_text(json.dumps({**meta, "arms": rows}, indent=2) + "\n")
    return 0


def markdown(rows, n, rounds, run, load) -> str:
    base = rows[0]["samples_per_s"]
    lines = [
        f"{n} test rows of {run}, 1 thread, median of {rounds} round(s); agreement and prob diff vs pytorch_fp32; "
        f"load average {load[0]:.1f} before, {load[1]:.1f} after ({os.cpu_count()} cores)",
        "",
        "| arm | samples/s | speed-up | test accuracy | size MB | labels agree | max prob diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['samples_per_s']:.1f} | {r['samples_per_s'] / base:.2f}x | {r['test_accuracy']:.4f} "
            f"| {r['size_mb']:.1f} | {r['label_agreement']:.2%} | {r['max_prob_diff']:.2e} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
