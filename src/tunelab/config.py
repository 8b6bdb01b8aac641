"""Finding, checking, printing and instantiating the Hydra configuration."""

from __future__ import annotations

import math
from pathlib import Path

from tunelab.errors import TunelabError


def config_dir() -> str:
    """The built-in config folder: ``conf/`` of a clone (editable install), or ``tunelab/conf``
    inside an installed wheel. Users add their own folder on top with ``--config-dir DIR``."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent.parent / "conf"):
        if (candidate / "train.yaml").exists():
            return str(candidate)
    raise TunelabError(f"tunelab's config folder was not found next to {package}. Reinstall tunelab.")


def _number(cfg, key: str):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TunelabError(f"{key} must be a number, got {value!r} ({type(value).__name__}). "
                           f"Example: {key}={'5e-5' if 'lr' in key else '32'}")
    return value


def validate(cfg) -> None:
    """Catch the common mistakes before anything heavy runs, with a message that says how to fix them."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise TunelabError(f"Missing mandatory value: {missing[0]}. Set it on the command line: {missing[0]}=...")
    for group in ("model", "task", "data", "trainer"):
        if OmegaConf.select(cfg, group) is None:
            raise TunelabError(f"The config has no '{group}'. Choose one: {group}=<option> (see conf/{group}/).")
    checks = {
        "optimizer.lr": lambda v: v > 0,
        "optimizer.weight_decay": lambda v: v >= 0,
        "data.batch_size": lambda v: isinstance(v, int) and v > 0,
        "data.eval_batch_size": lambda v: isinstance(v, int) and v > 0,
        "data.max_length": lambda v: isinstance(v, int) and v > 0,
        "trainer.max_epochs": lambda v: isinstance(v, int) and (v > 0 or v == -1),
        "trainer.accumulate_grad_batches": lambda v: isinstance(v, int) and v > 0,
        "trainer.gradient_clip_val": lambda v: v >= 0,
    }
    for key, ok in checks.items():
        value = _number(cfg, key)
        if value is not None and not math.isfinite(value):
            raise TunelabError(f"{key}={value} is not a finite number. Example: {key}={'5e-5' if 'lr' in key else '32'}")
        if value is not None and not ok(value):
            raise TunelabError(f"{key}={value} is out of range (must be {'> 0' if 'clip' not in key and 'decay' not in key else '>= 0'}"
                               f"{', an integer' if key.startswith(('data.', 'trainer.max', 'trainer.acc')) else ''}).")
    seed = OmegaConf.select(cfg, "seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TunelabError(f"seed must be an integer, got {seed!r}.")


def print_tree(cfg, path: Path | None = None) -> None:
    """The resolved config as a tree, groups in composition order."""
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key), style="bold")
        text = OmegaConf.to_yaml(value, resolve=True) if OmegaConf.is_config(value) else str(value)
        branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    Console(soft_wrap=True).print(tree)


def instantiate_each(section) -> list:
    """Instantiate every entry of a mapping of ``_target_`` configs (loggers, callbacks); skip nulls."""
    from hydra.utils import instantiate

    if not section:
        return []
    return [instantiate(c) for c in section.values() if c is not None and "_target_" in c]


def instantiate(cfg, where: str, **kwargs):
    """``hydra.utils.instantiate`` with an error message that names the config group."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as _instantiate

    try:
        return _instantiate(cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, TunelabError):
            raise cause from None
        target = cfg.get("_target_", "?") if hasattr(cfg, "get") else "?"
        raise TunelabError(f"Could not build {where} ({target}): {cause or err}".strip()
                           + f"\nCheck the keys under '{where}' (tunelab train --cfg job shows them).") from None
    except TunelabError:
        raise
