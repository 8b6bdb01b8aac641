"""Bad tuning settings fail before training with one message that says what the backbone has."""

from __future__ import annotations

import pytest

from helpers.runs import quick, train_in_process
from tunelab.errors import TunelabError
from tunelab.model.module import TuneModule
from tunelab.tasks import SequenceClassification
from tunelab.tuning.peft_methods import PeftMethod


def _module(backbone, **kwargs):
    return TuneModule(backbone, SequenceClassification(labels=["neg", "pos"]), **kwargs)


def test_target_module_that_does_not_exist_lists_the_real_ones(tiny_backbone, tmp_path, capsys):
    run = tmp_path / "run"
    code = train_in_process(*quick(tiny_backbone, run, "peft=lora", "model.peft.target_modules=[q_proj,v_proj]"))
    err = capsys.readouterr().err
    assert code != 0 and not (run / "metrics.json").exists()
    assert "'q_proj' is not a module of the bert backbone. Its layers are" in err
    assert "query" in err and "value" in err and "2 blocks" in err


def test_prefix_tuning_on_a_head_it_cannot_serve(tiny_backbone):
    from transformers import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(tiny_backbone)
    with pytest.raises(TunelabError, match="prefix_tuning cannot serve the head BertForMaskedLM.*peft=lora"):
        PeftMethod("prefix_tuning", num_virtual_tokens=4).apply(model)


def test_freezing_more_blocks_than_the_backbone_has(tiny_backbone):
    with pytest.raises(
        TunelabError, match=r"layers=5, but the bert backbone has 2 blocks \[bert.encoder.layer \(2\)\]"
    ):
        _module(tiny_backbone, freeze={"layers": 5})


def test_unknown_method_and_freeze_key(tiny_backbone):
    with pytest.raises(TunelabError, match="Did you mean 'lora'"):
        PeftMethod("lorra")
    with pytest.raises(TunelabError, match="unknown keys \\['blocks'\\]"):
        _module(tiny_backbone, freeze={"blocks": 2})
