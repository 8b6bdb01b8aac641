"""Paper configs: they compose, name the right Hub ids and hyper-parameters, and dry-run end to end on a
tiny random model of the same architecture, with a few rows shaped like the Hub dataset (no network here)."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from conftest import ROOT, train_in_process

PAPER = sorted(p.stem for p in (ROOT / "experiments" / "paper").glob("*.yaml"))
ARCHITECTURES = {"bert-base-cased": "BertConfig", "distilbert-base-uncased": "DistilBertConfig", "roberta-base": "RobertaConfig"}
RECIPES = {  # name: (backbone, lr, batch, epochs)
    "glue_sst2_bert_base_cased": ("bert-base-cased", 2e-5, 32, 3),
    "glue_mrpc_bert_base_cased": ("bert-base-cased", 2e-5, 32, 5),
    "glue_sst2_distilbert_base_uncased": ("distilbert-base-uncased", 2e-5, 32, 3),
    "lora_roberta_base_sst2": ("roberta-base", 5e-4, 16, 60),
    "lora_roberta_base_mrpc": ("roberta-base", 4e-4, 16, 30),
    "lora_roberta_base_rte": ("roberta-base", 5e-4, 16, 80),
    "lora_roberta_base_stsb": ("roberta-base", 4e-4, 16, 40),
}


def glue_like(path: str, name: str, revision=None, trust_remote_code=False):
    """A stand-in for datasets.load_dataset('nyu-mll/glue', name): same columns and label type, 48 rows."""
    assert path == "nyu-mll/glue"
    rows = range(48)
    if name == "sst2":
        cols = {"sentence": [f"a {'good' if i % 2 else 'bad'} film number {i}" for i in rows]}
    else:
        cols = {"sentence1": [f"the first sentence {i}" for i in rows], "sentence2": [f"a second one {i % 5}" for i in rows]}
    cols["label"] = [float(i % 5) for i in rows] if name == "stsb" else [i % 2 for i in rows]
    split = datasets.Dataset.from_dict(cols)
    return datasets.DatasetDict({"train": split, "validation": split.select(range(16))})


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import transformers
    from transformers import AutoModel, AutoTokenizer

    from tunelab.assets import asset_path

    tokenizer = AutoTokenizer.from_pretrained(str(asset_path("minilm")))
    folders = {}
    for hub_id, config_name in ARCHITECTURES.items():
        size = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64} if config_name == "DistilBertConfig" else \
            {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
        config = getattr(transformers, config_name)(vocab_size=tokenizer.vocab_size, max_position_embeddings=130,
                                                    pad_token_id=tokenizer.pad_token_id, **size)
        folder = tmp_path_factory.mktemp(hub_id)
        AutoModel.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[hub_id] = str(folder)
    return folders


def test_every_paper_config_is_listed_with_its_recipe():
    assert PAPER == sorted(RECIPES)


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_names_the_source_recipe_and_dry_runs(name, tiny_models, tmp_path):
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=paper/{name}", "paths.output_dir=/tmp/x"])
    backbone, lr, batch, epochs = RECIPES[name]
    assert (cfg.model.backbone, cfg.optimizer.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (backbone, lr, batch, epochs)
    assert cfg.data.loader.path == "nyu-mll/glue" and cfg.expected.value > 0.8 and cfg.expected.source

    run = tmp_path / "run"
    code = train_in_process(f"experiment=paper/{name}", f"model.backbone={tiny_models[backbone]}",
                            "data.loader._target_=test_repro_paper.glue_like", "data.max_length=32", "data.cache=false",
                            "debug=fast_dev_run", "~callbacks.progress_bar", "print_config=false", f"hydra.run.dir={run}")
    assert code == 0
    assert cfg.expected.metric in __import__("json").loads((run / "metrics.json").read_text())["metrics"]
