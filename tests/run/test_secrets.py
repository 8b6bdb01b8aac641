"""Secrets typed as config overrides (+service.api_key=...) reach no file of a run or of a sweep, and not
the console: Hydra's own records (.hydra/*.yaml, multirun.yaml), W&B's offline run (its recorded command
line included), the printed config tree. Real `tunelab train` processes, as a user runs them."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from helpers.runs import tiny_run, tunelab

SECRETS = {
    "+service.api_key": "sk-live-0a1b2c3d4e5f",
    "+service.password": "pa55-w0rd-4u",
    "+service.auth_token": "tok-98765-zyxw",
}
PLAIN = "plain-user-4242"  # +service.user: not a secret, must stay readable


def _command(backbone: str, seen: Path) -> list[str]:
    return [
        *[a for a in tiny_run(backbone) if a != "print_config=false"],
        "print_config=true",
        "logger=[csv,wandb]",
        *[f"{k}={v}" for k, v in SECRETS.items()],
        f"+service.user={PLAIN}",
        "+callbacks.seen._target_=helpers.sweep_probes.SeenValue",
        "+callbacks.seen.value=${service.api_key}",
        f"+callbacks.seen.path={seen}",
    ]


def _wandb_file(folder: Path) -> Path:
    """The offline run file, once W&B has written the config into it (its writer may lag the process)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
        if found and PLAIN.encode() in found[0].read_bytes():
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no W&B offline run holding the config under {folder}")


def _leaks(files: list[Path], console: str) -> list[str]:
    found = [f"{p}: {v}" for p in files for v in SECRETS.values() if v.encode() in p.read_bytes()]
    return found + [f"console: {v}" for v in SECRETS.values() if v in console]


def test_override_secrets_reach_no_file_and_no_console_of_a_run_and_a_sweep(tiny_backbone, tmp_path, monkeypatch):
    from tunelab.assets import cache_dir

    monkeypatch.setenv("TUNELAB_CACHE", str(cache_dir()))  # before HOME moves
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc, no key anywhere
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    real = hashlib.sha256(SECRETS["+service.api_key"].encode()).hexdigest()

    run, sweep = tmp_path / "run", tmp_path / "sweep"
    single = tunelab(
        "train", *_command(tiny_backbone, tmp_path / "seen-run"), f"hydra.run.dir={run}", outputs=tmp_path / "outputs"
    )
    assert single.returncode == 0, single.stderr[-3000:]
    multi = tunelab(
        "train",
        "-m",
        *_command(tiny_backbone, tmp_path / "seen-sweep"),
        f"hydra.sweep.dir={sweep}",
        outputs=tmp_path / "outputs",
    )
    assert multi.returncode == 0, multi.stderr[-3000:]
    # masking is of what is written, not of the config the job runs with
    assert (tmp_path / "seen-run").read_text() == real and (tmp_path / "seen-sweep").read_text() == real

    wandb_run, wandb_job = _wandb_file(run), _wandb_file(sweep / "0")
    files = sorted(p for p in [*run.rglob("*"), *sweep.rglob("*")] if p.is_file())
    console = single.stdout + single.stderr + multi.stdout + multi.stderr
    names = {str(p.relative_to(tmp_path)) for p in files}
    for wanted in (
        "run/config.yaml",
        "run/.hydra/config.yaml",
        "run/.hydra/hydra.yaml",
        "run/.hydra/overrides.yaml",
        "run/run.json",
        "run/train.log",
        "sweep/multirun.yaml",
        "sweep/0/.hydra/config.yaml",
        "sweep/0/.hydra/hydra.yaml",
        "sweep/0/config.yaml",
        "sweep/0/run.json",
    ):
        assert wanted in names, sorted(names)
    assert _leaks(files, console) == []

    # not wholesale: the non-secret value is still in every record, and the secrets' places say ***
    for path in (
        run / "config.yaml",
        run / ".hydra" / "config.yaml",
        run / ".hydra" / "overrides.yaml",
        sweep / "multirun.yaml",
        sweep / "0" / ".hydra" / "config.yaml",
        wandb_run,
        wandb_job,
    ):
        assert PLAIN.encode() in path.read_bytes(), path
    assert "api_key: '***'" in (run / ".hydra" / "config.yaml").read_text()
    assert "password: '***'" in (sweep / "multirun.yaml").read_text()
    # W&B still records the command line, masked (the run's metadata)
    assert b"+service.api_key=***" in wandb_run.read_bytes() and b"+service.api_key=***" in wandb_job.read_bytes()
    assert f"user: {PLAIN}" in single.stdout and "api_key: '***'" in single.stdout  # the printed config tree
    assert "#0 : " in multi.stdout and "+service.api_key=***" in multi.stdout  # the launcher's job line
    print(f"checked {len(files)} files and the console of a run and a 1-job sweep: 0 secrets found")
