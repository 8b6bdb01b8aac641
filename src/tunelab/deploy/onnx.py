"""An exported Hugging Face folder's encoder head as ``model.onnx``, checked against PyTorch with onnxruntime.

The graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model and its tokenizer use
them), each ``[batch, sequence]`` with both axes dynamic, and returns ``logits``. It comes from
``torch.onnx.export(..., dynamo=True)`` (torch.export): the TorchScript tracer (``dynamo=False``) records the
Python branches in transformers' attention-mask code as constants, and its graph was off by 1e-2 on an input
of another shape; the torch.export graph keeps batch and sequence symbolic and matches to ~1e-8.

Before ``model.onnx`` exists, onnxruntime runs it on real tokenized inputs of several batch sizes and lengths
and its logits must equal PyTorch's within ``TOLERANCE``; otherwise nothing is written and the export fails.
onnx, onnxscript and onnxruntime (the ``onnx`` extra) are imported only here, when an export asks for ONNX.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tunelab.errors import TunelabError

TOLERANCE = 1e-4
ONNX_NAME = "model.onnx"
#: tunelab heads (task names) with an ONNX export, and the transformers architecture each one saves
ONNX_HEADS = {
    "sequence_classification": "ForSequenceClassification",
    "regression": "ForSequenceClassification",
    "token_classification": "ForTokenClassification",
}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Real sentences of different lengths: a batch of one, and padded batches whose rows differ in length.
PARITY_BATCHES = (
    ("a fine film",),
    (
        "dull",
        "the plot wanders for an hour before anything happens , and the ending makes no sense at all",
        "a warm , funny and wise film",
    ),
    (
        "one of the best performances of the year , in a film that never quite deserves it",
        "not bad",
    ),
)


@dataclass
class Parity:
    max_diff: float
    shapes: list[tuple[int, int]]  # the [batch, sequence] shapes it was checked on


GENERATING = ("causal_lm", "seq2seq", "bert2bert", "CausalLM", "ConditionalGeneration", "EncoderDecoder")


def unsupported_head(head: str) -> TunelabError:
    heads = ", ".join(sorted(set(ONNX_HEADS)))
    why = (
        "a generating head: its decoding loop is not one graph"
        if any(g in head for g in GENERATING)
        else "its inputs or outputs are not one [batch, sequence] -> logits graph"
    )
    return TunelabError(
        f"ONNX export supports the encoder heads {heads}; the model's head is '{head}' ({why}). "
        "Export it without --onnx/--int8 (a Hugging Face folder) and serve it with transformers."
    )


def check_onnx_head(task_name: str) -> None:
    """Fail before anything is written when the run's head has no ONNX export."""
    if task_name not in ONNX_HEADS:
        raise unsupported_head(task_name)


def load_for_onnx(folder: Path):
    """(model, tokenizer, input names) of an exported folder; the architecture must be a supported head."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    arch = (config.architectures or ["?"])[0]
    if not arch.endswith(tuple(ONNX_HEADS.values())) or not hasattr(transformers, arch):
        raise unsupported_head(arch)
    model = getattr(transformers, arch).from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    takes = inspect.signature(model.forward).parameters
    names = [n for n in INPUTS if n in takes and (n != "token_type_ids" or n in tokenizer.model_input_names)]
    return model, tokenizer, names


def encode(tokenizer, texts, names) -> dict:
    """Numpy int64 inputs for onnxruntime (and torch), cut at the exported max length."""
    enc = tokenizer(list(texts), padding=True, truncation=True, return_tensors="np")
    return {n: enc[n].astype("int64") for n in names}


class LogitsOnly(torch.nn.Module):
    """The model with the graph's signature: token tensors in, logits out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def write_onnx(model, tokenizer, names, path: Path) -> None:
    example = encode(tokenizer, PARITY_BATCHES[1], names)  # batch 3, sequence > 1: neither axis specialises
    args = tuple(torch.from_numpy(example[n]) for n in names)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    # "torchvision is not installed. Skipping torchvision::nms": true, and nothing a text model needs
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.export's notes on transformers internals, not the user's concern
        program = torch.onnx.export(
            LogitsOnly(model).eval(),
            args,
            input_names=list(names),
            output_names=["logits"],
            dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        program.save(str(path), external_data=False)


def session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(path: Path, model, tokenizer, names, tolerance: float = TOLERANCE) -> Parity:
    """onnxruntime's logits against PyTorch's on every parity batch; a TunelabError past ``tolerance``."""
    sess = session(path)
    worst, shapes = 0.0, []
    for texts in PARITY_BATCHES:
        inputs = encode(tokenizer, texts, names)
        with torch.no_grad():
            expected = model(**{n: torch.from_numpy(v) for n, v in inputs.items()}).logits.numpy()
        [got] = sess.run(["logits"], inputs)
        shape = tuple(inputs["input_ids"].shape)
        if got.shape != expected.shape:
            raise TunelabError(
                f"The ONNX graph returned logits of shape {got.shape} for inputs {shape}; PyTorch returns "
                f"{expected.shape}. Its batch/sequence axes are not dynamic; no {ONNX_NAME} was written."
            )
        worst, shapes = max(worst, float(np.abs(got - expected).max())), [*shapes, shape]
    if not worst <= tolerance:  # NaN fails too
        raise TunelabError(
            f"ONNX parity check failed: max |logit diff| between onnxruntime and PyTorch is {worst:.3g} "
            f"(> {tolerance:g}) on inputs of shapes {shapes}; no {ONNX_NAME} was written. The Hugging Face "
            "folder is complete; report this with the model's architecture and torch/onnxruntime versions."
        )
    return Parity(worst, shapes)


def export_onnx(folder, tolerance: float = TOLERANCE) -> tuple[Path, Parity]:
    """``folder/model.onnx`` from the exported Hugging Face ``folder``, written only once it passed parity."""
    folder = Path(folder)
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as err:
        raise TunelabError(
            f"ONNX export needs the onnx extra ({err.name} is not installed): pip install 'tunelab[onnx]'."
        ) from None
    model, tokenizer, names = load_for_onnx(folder)
    target = folder / ONNX_NAME
    target.unlink(missing_ok=True)  # an earlier export's graph must not outlive a failed check
    scratch = Path(tempfile.mkdtemp(prefix=".onnx-", dir=folder))
    try:
        try:
            write_onnx(model, tokenizer, names, scratch / ONNX_NAME)
        except Exception as err:
            raise TunelabError(
                f"torch.onnx.export could not export {type(model).__name__} from {folder}: "
                f"{type(err).__name__}: ...{str(err)[-400:]}"
            ) from err
        parity = check_parity(scratch / ONNX_NAME, model, tokenizer, names, tolerance)
        os.replace(scratch / ONNX_NAME, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target, parity


def describe(parity: Parity, tolerance: float = TOLERANCE) -> str:
    shapes = ", ".join(f"{b}x{s}" for b, s in parity.shapes)
    return (
        f"max |logit diff| onnxruntime vs PyTorch: {parity.max_diff:.2e} (<= {tolerance:g}; batch x sequence {shapes})"
    )
