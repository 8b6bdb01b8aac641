"""Paper configs: they compose, name the right Hub ids and hyper-parameters, and dry-run end to end on a
tiny random model of the same architecture, with a few rows shaped like the Hub dataset (no network here)."""

from __future__ import annotations

import json

import pytest

from helpers.paper_stand_ins import CONLL, GLUE, SQUAD, STAND_INS, glue_like
from helpers.runs import ROOT, train_in_process

PAPER = sorted(p.stem for p in (ROOT / "experiments" / "paper").glob("*.yaml"))
ARCHITECTURES = {
    "bert-base-cased": "BertConfig",
    "bert-base-uncased": "BertConfig",
    "distilbert-base-uncased": "DistilBertConfig",
    "roberta-base": "RobertaConfig",
}
RECIPES = {  # name: (backbone, lr, batch, epochs, Hub dataset, expected metric, expected value) as the sources give them
    "glue_sst2_bert_base_cased": ("bert-base-cased", 2e-5, 32, 3, GLUE, "test/accuracy", 0.9232),
    "glue_mrpc_bert_base_cased": ("bert-base-cased", 2e-5, 32, 5, GLUE, "test/f1", 0.8885),
    "glue_sst2_distilbert_base_uncased": ("distilbert-base-uncased", 2e-5, 32, 3, GLUE, "test/accuracy", 0.913),
    "lora_roberta_base_sst2": ("roberta-base", 5e-4, 16, 60, GLUE, "test/accuracy", 0.951),
    "lora_roberta_base_mrpc": ("roberta-base", 4e-4, 16, 30, GLUE, "test/accuracy", 0.897),
    "lora_roberta_base_rte": ("roberta-base", 5e-4, 16, 80, GLUE, "test/accuracy", 0.866),
    "lora_roberta_base_stsb": ("roberta-base", 4e-4, 16, 40, GLUE, "test/pearson", 0.915),
    "conll2003_bert_base_cased": ("bert-base-cased", 2e-5, 32, 3, CONLL, "test/f1", 0.914),
    "squad_v1_bert_base_uncased": ("bert-base-uncased", 3e-5, 12, 2, SQUAD, "test/f1", 88.52),
}
# nyu-mll/glue's ClassLabel names (the GLUE dataset card); MRPC's F1 is that of label 1, "equivalent"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import transformers
    from transformers import AutoModel, AutoTokenizer

    from tunelab.assets import asset_path

    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    folders = {}
    for hub_id, config_name in ARCHITECTURES.items():
        size = (
            {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64}
            if config_name == "DistilBertConfig"
            else {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
        )
        config = getattr(transformers, config_name)(
            vocab_size=tokenizer.vocab_size, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id, **size
        )
        folder = tmp_path_factory.mktemp(hub_id)
        AutoModel.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[hub_id] = str(folder)
    return folders


def compose(name: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return hydra_compose("train", overrides=[f"experiment=paper/{name}", "paths.output_dir=/tmp/x"])


def test_every_paper_config_is_listed_with_its_recipe():
    assert PAPER == sorted(RECIPES)


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_names_the_source_recipe_and_dry_runs(name, tiny_models, tmp_path):
    cfg = compose(name)
    backbone, lr, batch, epochs, dataset, metric, value = RECIPES[name]
    assert (cfg.model.backbone, cfg.optimizer.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (
        backbone,
        lr,
        batch,
        epochs,
    )
    assert cfg.data.loader.path == dataset and cfg.data.loader._target_ == "tunelab.data.sources.hub"
    assert (cfg.expected.metric, cfg.expected.value) == (metric, value) and cfg.expected.source
    lora = name.startswith("lora_")
    if lora:  # the paper's adapter: r=8 on W_q and W_v, alpha 8, no LoRA dropout
        peft = cfg.model.peft
        assert (peft.method, list(peft.target_modules), peft.r, peft.lora_alpha, peft.lora_dropout) == (
            "lora",
            ["query", "value"],
            8,
            8,
            0.0,
        )
    else:
        assert cfg.model.peft is None  # full fine-tuning

    run = tmp_path / "run"
    short = "data.max_length=64" if dataset == SQUAD else "data.max_length=32"  # QA: several windows per context
    code = train_in_process(
        f"experiment=paper/{name}",
        f"model.backbone={tiny_models[backbone]}",
        f"data.loader._target_=helpers.paper_stand_ins.{STAND_INS[dataset]}",
        short,
        "data.cache=false",
        "debug=fast_dev_run",
        "~callbacks.progress_bar",
        "print_config=false",
        f"hydra.run.dir={run}",
    )
    assert code == 0
    summary = json.loads((run / "metrics.json").read_text())
    assert cfg.expected.metric in summary["metrics"]
    if cfg.expected.get("secondary"):
        assert cfg.expected.secondary.metric in summary["metrics"]
    groups = summary["parameters"]["groups"]
    if lora:  # only the adapter and the classification head train; the backbone's own weights are frozen
        assert groups["adapter"]["trainable"] > 0 and groups["head"]["trainable"] > 0
        assert groups["blocks"]["trainable"] == 0 and groups["embeddings"]["trainable"] == 0
    else:
        assert summary["parameters"]["trainable"] == summary["parameters"]["total"]


def test_mrpc_f1_is_that_of_the_equivalent_label():
    from hydra.utils import instantiate

    cfg = compose("glue_mrpc_bert_base_cased")
    task = instantiate(cfg.task)
    labels = task.labels_from(glue_like(GLUE, "mrpc")["train"])  # the ClassLabel names: the label set, in id order
    task.setup(None, labels)
    assert task.labels == ["not_equivalent", "equivalent"]
    assert task.labels.index(task.positive_label) == 1 and cfg.task.metric == "val/f1"
