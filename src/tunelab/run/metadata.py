"""What a run needs to be reproduced: code version, packages, hardware (written to run.json).

git        commit, dirty flag, and the diff itself (<run>/git.diff) when the tree is dirty
packages   versions of the libraries that change numbers
platform   python, torch, CUDA/cuDNN, GPU names, CPU count, OS
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path

PACKAGES = (
    "tunelab",
    "torch",
    "lightning",
    "transformers",
    "tokenizers",
    "datasets",
    "peft",
    "accelerate",
    "hydra-core",
    "omegaconf",
    "torchmetrics",
    "numpy",
    "safetensors",
    "huggingface-hub",
)


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_info(run_dir: Path, source: Path | None = None) -> dict:
    """Commit and dirty flag of the tunelab checkout; the diff goes to <run>/git.diff."""
    source = source or Path(__file__).resolve().parent
    commit = _git("rev-parse", "HEAD", cwd=source)
    if commit is None:
        return {"commit": None, "note": "not a git checkout (installed package)"}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=source) or ""
    info = {"commit": commit.strip(), "dirty": bool(status.strip())}
    if info["dirty"]:
        from tunelab.run.secrets import scrub_text

        diff = _git("diff", "HEAD", cwd=source) or ""
        (Path(run_dir) / "git.diff").write_text(scrub_text(diff))
        info["diff"] = "git.diff"
    return info


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def platform_info() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }
    return info


def collect(run_dir: Path) -> dict:
    return {"git": git_info(run_dir), "packages": package_versions(), "platform": platform_info()}
