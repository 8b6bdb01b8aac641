"""ONNX export and int8 quantization (issue 21, items 2 and 3): `tunelab export RUN --out DIR --onnx/--int8`."""

from __future__ import annotations

import re

import lightning  # noqa: F401  (before any capsys test: Lightning's log handler keeps the stderr it finds)
import numpy as np
import pytest

from helpers.runs import quick, train_in_process

NER = [
    "task=token_classification",
    "data=hironsan_ner",
    "task.labels=[O,B-ART,B-DAT,B-LOC,B-MON,B-ORG,B-PER,B-PSN,B-TIM]",
]


def _train(tmp_path_factory, backbone, name, *extra):
    run = tmp_path_factory.mktemp(name) / "run"
    assert train_in_process(*quick(backbone, run, *extra)) == 0
    return run


@pytest.fixture(scope="module")
def classification_run(tiny_backbone, tmp_path_factory):
    return _train(tmp_path_factory, tiny_backbone, "cls")


def _export(run, out, *flags):
    from tunelab.cli import main

    return main(["export", str(run), "--out", str(out), *flags])


def _onnxruntime_vs_pytorch(folder, auto_class, batches):
    """(max |logit diff|, shapes) between onnxruntime on folder/model.onnx and transformers on the folder."""
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer

    model = auto_class.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    worst, shapes = 0.0, []
    for texts in batches:
        enc = tokenizer(texts, padding=True, return_tensors="np")
        inputs = {n: enc[n].astype("int64") for n in names}
        with torch.no_grad():
            expected = model(**{n: torch.from_numpy(v) for n, v in inputs.items()}).logits.numpy()
        [got] = sess.run(["logits"], inputs)
        assert got.shape == expected.shape
        worst, shapes = max(worst, float(np.abs(got - expected).max())), [*shapes, inputs["input_ids"].shape]
    return worst, shapes, sess


# Not the parity batches the export checks itself on: other texts, other lengths.
BATCHES = [["an utterly charming little film"], ["bad", "i laughed , i cried , i went home and told my friends", "ok"]]


def test_onnx_export_equals_pytorch_on_dynamic_shapes_and_int8_labels_agree(classification_run, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "exported"
    assert _export(classification_run, out, "--int8") == 0  # --int8 implies --onnx
    printed = capsys.readouterr().out
    [diff] = re.findall(r"max \|logit diff\| onnxruntime vs PyTorch: (\S+) \(<= 0.0001", printed)
    assert float(diff) <= 1e-4
    assert (out / "model.onnx").is_file() and (out / "model.int8.onnx").is_file()
    assert (out / "config.json").is_file()  # the Hugging Face folder is still all there
    assert not list(out.glob(".onnx-*")) and not list(out.glob(".int8-*"))  # no scratch left

    worst, shapes, sess = _onnxruntime_vs_pytorch(out, AutoModelForSequenceClassification, BATCHES)
    assert worst <= 1e-4
    assert shapes[0][0] == 1 and shapes[1][0] == 3 and shapes[0][1] != shapes[1][1]  # both axes really vary
    assert [i.shape for i in sess.get_inputs()] == [["batch", "sequence"]] * 3
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]

    [agree] = re.findall(r"int8 vs fp32 onnx: labels agree (\S+)% of (\d+), max prob diff (\S+)", printed)
    assert float(agree[0]) == 100.0 and int(agree[1]) == 6 and float(agree[2]) < 0.05
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size


def test_token_classification_exports_per_token_logits(tiny_backbone, tmp_path_factory, tmp_path, capsys):
    from transformers import AutoModelForTokenClassification

    run = _train(tmp_path_factory, tiny_backbone, "ner", *NER)
    out = tmp_path / "exported"
    assert _export(run, out, "--onnx") == 0
    assert "max |logit diff|" in capsys.readouterr().out
    assert not (out / "model.int8.onnx").exists()
    worst, shapes, sess = _onnxruntime_vs_pytorch(
        out, AutoModelForTokenClassification, [["東京 で"], ["a", "b c d", "e f"]]
    )
    assert worst <= 1e-4 and sess.get_outputs()[0].shape == ["batch", "sequence", 17]  # O + B-/I- of 8 types


def test_a_failed_parity_check_fails_loudly_and_writes_no_model_onnx(classification_run, tmp_path, capsys, monkeypatch):
    from tunelab.deploy import onnx as onnx_export

    real_session = onnx_export.session

    class Corrupted:  # an ONNX graph whose logits are off by 1e-3
        def __init__(self, path):
            self.inner = real_session(path)

        def run(self, names, inputs):
            return [x + 1e-3 for x in self.inner.run(names, inputs)]

    monkeypatch.setattr(onnx_export, "session", Corrupted)
    out = tmp_path / "exported"
    out.mkdir()
    (out / "model.onnx").write_text("an earlier export's graph")
    assert _export(classification_run, out, "--int8", "--force") != 0
    captured = capsys.readouterr()
    assert re.search(
        r"ONNX parity check failed: max \|logit diff\| .* is 0.001 .*no model.onnx was written", captured.err
    )
    assert "Traceback" not in captured.err and "wrote" not in captured.out
    assert not (out / "model.onnx").exists() and not (out / "model.int8.onnx").exists()
    assert not list(out.glob(".onnx-*"))


def test_generating_heads_are_refused_naming_the_supported_ones(tiny_llama, tmp_path_factory, tmp_path, capsys):
    from tunelab.deploy.onnx import load_for_onnx
    from tunelab.errors import TunelabError

    message = r"ONNX export supports the encoder heads regression, sequence_classification, token_classification"
    with pytest.raises(TunelabError, match=message + r"; the model's head is 'LlamaForCausalLM' \(a generating head"):
        load_for_onnx(tiny_llama)  # an exported folder of a causal LM

    run = _train(
        tmp_path_factory,
        tiny_llama,
        "lm",
        "task=causal_lm",
        "data=lee_instructions",
        "task.max_new_tokens=4",
        "data.max_samples={train: 16, validation: 8, test: 8}",
    )
    capsys.readouterr()
    out = tmp_path / "exported"
    assert _export(run, out, "--onnx") != 0
    err = capsys.readouterr().err
    assert re.search(message + r"; the model's head is 'causal_lm' \(a generating head", err) and "Traceback" not in err
    assert not out.exists()  # refused before anything was written
