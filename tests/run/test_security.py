"""Security: no secret in anything a run writes, safe loading, safetensors-only export, contained output paths."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.runs import ROOT, quick, train_in_process
from tunelab.errors import TunelabError

SECRETS = {
    "WANDB_API_KEY": "wandb-secret-0123456789abcdef",
    "HF_TOKEN": "hf_SeCrEt0123456789xyz",
    "MY_SERVICE_TOKEN": "svc-9f8e7d6c5b4a",
}


def test_secrets_reach_no_file_of_the_run_nor_the_logged_config(tiny_backbone, tmp_path, monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    # the secrets reach the config too: an interpolation of the environment, and a key typed on the command line
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "logger=[csv,wandb]",
            "+notes.token=${oc.env:HF_TOKEN}",
            f"+notes.api_key={SECRETS['MY_SERVICE_TOKEN']}",
            f"+notes.url=https://x/?{SECRETS['WANDB_API_KEY']}",
        )
    )
    assert code == 0
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in files) and any(p.suffix == ".wandb" for p in files)
    for path in files:
        data = path.read_bytes()
        for value in SECRETS.values():
            assert value.encode() not in data, f"{value} leaked into {path.relative_to(run)}"
    config = (run / "config.yaml").read_text()
    assert "token: '***'" in config and "api_key: '***'" in config and "https://x/?***" in config

    from tunelab.commands.export import export_run

    out = export_run(str(run), str(tmp_path / "export"))
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert ".safetensors" in suffixes and not suffixes & {".bin", ".pt", ".pth", ".pkl", ".ckpt"}
    for path in out.rglob("*"):
        if path.is_file():
            assert not any(v.encode() in path.read_bytes() for v in SECRETS.values()), path


def test_every_torch_load_in_tunelab_uses_weights_only():
    calls = []
    for path in (ROOT / "src" / "tunelab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "load"
                and getattr(node.func.value, "id", None) == "torch"
            ):
                flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                calls.append((path.name, node.lineno, flags.get("weights_only")))
    assert calls, "the scan found no torch.load at all"
    assert all(flag is True for *_, flag in calls), calls
    # Lightning's own loads (resume, test with the best checkpoint) go through AtomicCheckpointIO
    from tunelab.run.checkpoint_io import AtomicCheckpointIO

    assert "weights_only=True" in Path(AtomicCheckpointIO.load_checkpoint.__code__.co_filename).read_text()


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path):
    import argparse

    import torch

    from tunelab.run.checkpoint_io import AtomicCheckpointIO

    # any class in a pickle (here a harmless one) is code that weights_only=False would import and run
    torch.save({"state_dict": {}, "payload": argparse.Namespace(cmd="rm -rf ~")}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "evil.ckpt")


def test_remote_code_runs_only_when_asked(tmp_path):
    from tunelab.model.backbone import check_remote_code

    (tmp_path / "config.json").write_text('{"model_type": "my_arch", "auto_map": {"AutoConfig": "cfg.MyConfig"}}')
    with pytest.raises(TunelabError, match="model.trust_remote_code=true"):
        check_remote_code("mine", str(tmp_path), trust_remote_code=False)
    check_remote_code("mine", str(tmp_path), trust_remote_code=True)
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        assert compose("train", overrides=["paths.output_dir=/tmp/x"]).model.trust_remote_code is False


def test_output_paths_stay_inside_the_run_unless_named_on_the_command_line(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    from tunelab.config import config_dir
    from tunelab.run import preflight

    run = tmp_path / "run"
    outside = tmp_path / "elsewhere"
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={run}", f"callbacks.model_checkpoint.dirpath={outside}"])
    monkeypatch.setattr(preflight, "_named_on_command_line", lambda: set())  # e.g. set in a shared experiment file
    with pytest.raises(
        TunelabError, match=r"callbacks.model_checkpoint.dirpath=.*elsewhere writes outside the run directory"
    ):
        preflight.check_output_paths(cfg, run)
    monkeypatch.setattr(preflight, "_named_on_command_line", lambda: {"callbacks.model_checkpoint.dirpath"})
    preflight.check_output_paths(cfg, run)  # the user typed it: their choice
    cfg.callbacks.model_checkpoint.dirpath = str(run / "checkpoints")
    cfg.logger.csv.save_dir = str(run / ".." / ".." / "escape")
    with pytest.raises(TunelabError, match="logger.csv.save_dir"):
        preflight.check_output_paths(cfg, run)


def test_scrub_masks_secret_names_and_values(monkeypatch):
    from tunelab.run.secrets import scrub, scrub_text

    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijkl")
    assert scrub({"hf_token": "anything", "lr": 0.1, "cmd": ["x", "--url=https://hf_abcdefghijkl@host"]}) == {
        "hf_token": "***",
        "lr": 0.1,
        "cmd": ["x", "--url=https://***@host"],
    }
    assert scrub_text("+logger.wandb.api_key=abc123 seed=1") == "+logger.wandb.api_key=*** seed=1"
