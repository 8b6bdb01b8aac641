"""int8 dynamic quantization of ``model.onnx`` for CPU serving: ``model.int8.onnx``, with its agreement printed.

onnxruntime's ``quantize_dynamic`` stores the MatMul/Gemm weights as int8 and quantizes activations per batch
at run time; nothing is calibrated, so any exported folder can be quantized. int8 changes the logits a
little, so it is not held to the fp32 graph's 1e-4 parity: the check reports how often the int8 labels (argmax)
agree with the fp32 graph's and the largest probability difference (for regression, the largest score
difference) on the parity batches (and, in bench/int8.py, on a whole test split).

Weights are quantized per output channel: on MiniLM/MR (400 test rows) per-tensor int8 labels agreed with fp32
95.0% of the time (max prob diff 0.39), per-channel 99.0% (0.19), at the same speed and size; quantizing the
MatMuls alone (fp32 embeddings) was worse (94.75-97.25%) and 2.5x larger.

onnxruntime's shape pre-processing (``quant_pre_process``) is not run: its symbolic shape inference stops
("Incomplete symbolic shape inference") on the torch.export graph, and quantize_dynamic does not need it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunelab.deploy.onnx import ONNX_NAME, PARITY_BATCHES, encode, load_for_onnx, session
from tunelab.errors import TunelabError

INT8_NAME = "model.int8.onnx"


@dataclass
class Agreement:
    label_agreement: float  # share of predicted labels (argmax; per token for tagging) that agree
    max_prob_diff: float  # largest |softmax difference| (regression: |score difference|)
    compared: int  # how many labels were compared


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def agreement(reference: list[np.ndarray], other: list[np.ndarray], masks: list[np.ndarray]) -> Agreement:
    """How far ``other``'s logits are from ``reference``'s, batch by batch; ``masks`` drop padded tokens."""
    agree = total = 0
    worst = 0.0
    for ref, got, mask in zip(reference, other, masks):
        keep = mask.astype(bool) if ref.ndim == 3 else np.ones(ref.shape[0], bool)  # tagging: real tokens only
        if ref.shape[-1] == 1:  # regression: one score, no label
            worst = max(worst, float(np.abs(ref - got)[keep].max()))
            agree, total = agree + int(keep.sum()), total + int(keep.sum())
            continue
        agree += int((ref.argmax(-1) == got.argmax(-1))[keep].sum())
        total += int(keep.sum())
        worst = max(worst, float(np.abs(softmax(ref) - softmax(got))[keep].max()))
    return Agreement(agree / max(total, 1), worst, total)


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Please consider to run pre-processing")


def quantize_int8(folder) -> tuple[Path, Agreement]:
    """``folder/model.int8.onnx`` from ``folder/model.onnx`` (written first by ``export_onnx``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    source = folder / ONNX_NAME
    if not source.exists():
        raise TunelabError(f"No {source} to quantize. Export with --onnx first (--int8 implies it).")
    target = folder / INT8_NAME
    target.unlink(missing_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder))
    try:
        try:
            root = logging.getLogger()
            root.addFilter(_no_preprocessing_advice)
            try:
                quantize_dynamic(source, scratch / INT8_NAME, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                root.removeFilter(_no_preprocessing_advice)
        except Exception as err:
            raise TunelabError(
                f"onnxruntime could not quantize {source}: {type(err).__name__}: {str(err)[:400]}. "
                f"{ONNX_NAME} is complete and usable without int8."
            ) from err
        _, tokenizer, names = load_for_onnx(folder)
        result = compare_graphs(source, scratch / INT8_NAME, tokenizer, names, PARITY_BATCHES)
        os.replace(scratch / INT8_NAME, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target, result


def compare_graphs(reference: Path, other: Path, tokenizer, names, batches) -> Agreement:
    """Two ONNX graphs' logits on the same tokenized batches."""
    ref_session, other_session = session(reference), session(other)
    refs, others, masks = [], [], []
    for texts in batches:
        inputs = encode(tokenizer, texts, names)
        refs.append(ref_session.run(["logits"], inputs)[0])
        others.append(other_session.run(["logits"], inputs)[0])
        masks.append(inputs["attention_mask"])
    return agreement(refs, others, masks)


def describe(result: Agreement) -> str:
    return (
        f"int8 vs fp32 onnx: labels agree {result.label_agreement:.1%} of {result.compared}, "
        f"max prob diff {result.max_prob_diff:.4f}"
    )
