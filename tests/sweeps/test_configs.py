"""Every committed sweep and launcher config composes; sweeps sweep keys that exist; SLURM reads conf/local."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers.runs import ROOT
from tunelab.config import config_dir

SWEEPS = sorted(p.stem for p in (ROOT / "conf" / "sweeps").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (ROOT / "conf" / "hydra" / "launcher").glob("*.yaml"))


def compose_config(*overrides: str, conf: str | None = None):
    with initialize_config_dir(conf or config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_composes_and_its_swept_keys_exist(sweep):
    cfg = compose_config(f"sweeps={sweep}")
    header = (ROOT / "conf" / "sweeps" / f"{sweep}.yaml").read_text().splitlines()[:12]
    assert any(f"sweeps={sweep}" in line for line in header), "the header documents the launch command"
    params = cfg.hydra.sweeper.params
    assert params, "a sweep sweeps something"
    for key in params:
        if key in cfg.hydra.runtime.choices or key == "experiment":  # a config group choice: the option must exist
            options = {p.stem for p in (ROOT / "conf" / key).glob("*.yaml")}
            assert set(str(params[key]).split(",")) <= options, f"{sweep} sweeps unknown {key} options"
        else:
            assert OmegaConf.select(cfg, key, default="missing") != "missing", f"{sweep} sweeps unknown key {key}"


def test_sweep_choices_exist():
    assert {"lr_freeze", "seeds", "strategy", "optuna_lr"} <= set(SWEEPS)
    assert compose_config("sweeps=optuna_lr").hydra.sweeper._target_.endswith("OptunaSweeper")
    assert set(str(compose_config("sweeps=strategy").hydra.sweeper.params.trainer).split(",")) == {"cpu", "ddp", "fsdp"}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes(launcher):
    cfg = compose_config(f"hydra/launcher={launcher}")
    assert cfg.hydra.launcher._target_.rsplit(".", 1)[-1] in {
        "BasicLauncher",
        "JoblibLauncher",
        "LocalLauncher",
        "SlurmLauncher",
    }


def test_slurm_takes_machine_values_from_conf_local(tmp_path):
    conf = tmp_path / "conf"
    for item in Path(config_dir()).iterdir():  # the real configs, plus a machine's conf/local/slurm.yaml
        (conf / item.name).parent.mkdir(parents=True, exist_ok=True)
        (conf / item.name).symlink_to(item.resolve())
    (conf / "local").mkdir()
    (conf / "local" / "slurm.yaml").write_text("partition: gpu-long\naccount: nlp-lab\ngpus_per_node: 4\n")
    launcher = compose_config("hydra/launcher=slurm", conf=str(conf)).hydra.launcher
    assert (launcher.partition, launcher.account, launcher.gpus_per_node) == ("gpu-long", "nlp-lab", 4)
    assert compose_config("hydra/launcher=slurm").hydra.launcher.partition is None  # no conf/local: nothing assumed
