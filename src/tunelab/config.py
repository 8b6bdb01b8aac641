"""Finding, checking, printing and instantiating the Hydra configuration."""

from __future__ import annotations

import math
from pathlib import Path

from tunelab.errors import TunelabError, did_you_mean


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
        raise TunelabError(
            f"{key} must be a number, got {value!r} ({type(value).__name__}). "
            f"Example: {key}={'5e-5' if 'lr' in key else '32'}"
        )
    return value


# the objects a model config builds for TuneModule (conf/model/common/tuning.yaml, the peft and adversarial groups)
MODEL_PARTS = ("peft", "freeze", "layer_decay", "adversarial")


def validate(cfg) -> None:
    """Catch the common mistakes before anything heavy runs, with a message that says how to fix them.

    Plain checks, not a structured (dataclass) schema: OmegaConf's schema errors name the expected type,
    not the override that fixes it, and the ranges (> 0, or -1 for no limit) would still be code here."""
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
        # data.batch_size and data.max_length: TuneDataModule checks them (for the Python API too), before any data is read
        "data.eval_batch_size": lambda v: isinstance(v, int) and v > 0,
        "trainer.max_epochs": lambda v: isinstance(v, int) and (v > 0 or v == -1),
        # 0 would "complete" a run that trained nothing and write its metrics.json; -1 is Lightning's "no limit"
        "trainer.max_steps": lambda v: isinstance(v, int) and (v > 0 or v == -1),
        "trainer.accumulate_grad_batches": lambda v: isinstance(v, int) and v > 0,
        "trainer.gradient_clip_val": lambda v: v >= 0,
    }
    for key, ok in checks.items():
        value = _number(cfg, key)
        if value is not None and not math.isfinite(value):
            raise TunelabError(
                f"{key}={value} is not a finite number. Example: {key}={'5e-5' if 'lr' in key else '32'}"
            )
        if value is not None and not ok(value):
            raise TunelabError(
                f"{key}={value} is out of range (must be {'> 0' if 'clip' not in key and 'decay' not in key else '>= 0'}"
                f"{' or -1 for no limit' if key.startswith('trainer.max') else ''}"
                f"{', an integer' if key.startswith(('data.', 'trainer.max', 'trainer.acc')) else ''})."
            )
    for split, n in (OmegaConf.select(cfg, "data.max_samples", default=None) or {}).items():
        if n is not None and (
            isinstance(n, bool) or not isinstance(n, int) or n < 0 or split not in ("train", "validation", "test")
        ):
            raise TunelabError(
                f"data.max_samples.{split}={n!r}: give a number of rows (or null for all) for "
                "train, validation or test."
            )
    # the groups, and the objects the model config builds inside TuneModule (peft, freeze, layer decay, adversary)
    for group in ("optimizer", "scheduler", "trainer", "model", "data", *(f"model.{key}" for key in MODEL_PARTS)):
        check_arguments(cfg, group)
    seed = OmegaConf.select(cfg, "seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TunelabError(f"seed must be an integer, got {seed!r}.")


_HYDRA_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def check_arguments(cfg, group: str) -> None:
    """Every key under ``group`` is an argument its ``_target_`` takes: a typo (``+optimizer.lrr``) or a
    setting of another optimizer (AdamW's betas under ``torch.optim.SGD``) fails here with the key named,
    not as a TypeError deep inside the first training step."""
    import inspect

    from hydra._internal.utils import _locate
    from omegaconf import OmegaConf

    section = OmegaConf.select(cfg, group, default=None)
    if not OmegaConf.is_dict(section) or "_target_" not in section:
        return
    target = section._target_
    try:
        params = inspect.signature(_locate(target)).parameters
    except Exception:  # not importable or no signature: instantiate() says so with the group named
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [str(k) for k in section if k not in _HYDRA_KEYS and k not in accepted]
    if not unknown:
        return
    named = _named_on_command_line()
    hints = []
    for key in unknown:
        if f"{group}.{key}" in named:  # the user's own (mis)spelling: point at the nearest real argument, not at '+key'
            close = did_you_mean(key, accepted)
            hints.append(f"{group}.{key}: {close.strip() if close else 'no such argument'}")
        else:  # a setting of the group's config file that the new _target_ does not have
            hints.append(f"{group}.{key} comes from the {group} config: remove it with ~{group}.{key}")
    options = [a for a in accepted if a not in ("params", "optimizer", "num_training_steps")]
    if len(options) > 12:  # the Trainer takes 40: name the nearest few
        import difflib

        nearest = difflib.get_close_matches(unknown[0], options, n=5, cutoff=0.3)
        listing = f"{len(options)} arguments; the nearest: {', '.join(nearest or options[:5])}"
    else:
        listing = ", ".join(options)
    raise TunelabError(
        f"{target} takes no argument {', '.join(repr(k) for k in unknown)} ({'; '.join(hints)}).\n"
        f"It takes {listing}."
        + (
            " Or choose a config written for it (conf/optimizer/, e.g. optimizer=sgd)."
            if group == "optimizer" and any(f"{group}.{k}" not in named for k in unknown)
            else ""
        )
    )


def _named_on_command_line() -> set[str]:
    """Config keys given as overrides (``+optimizer.lrr=1e-4`` -> ``optimizer.lrr``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    except ValueError:
        overrides = []
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def check_metric(task) -> None:
    """``task.metric`` is one of the validation metrics the task logs (``val/`` + its metrics(), and
    ``val/loss``). Called once the labels are known (metrics() needs them), before training: a typo
    otherwise crashes when validation first runs, or, with no validation, passes as a completed run."""
    logged = sorted({*task.metrics().clone(prefix="val/").keys(), "val/loss"})
    if task.metric not in logged:
        raise TunelabError(
            f"task.metric={task.metric} is not a metric this task logs.{did_you_mean(task.metric, logged)} "
            f"It logs: {', '.join(logged)}. Set task.metric=<one of those>."
        )


def _changed_groups() -> set[str] | None:
    """Top-level keys the command line touched (None: unknown, or an experiment that sets many)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.runtime.choices.get("experiment") or hc.runtime.choices.get("sweeps"):
        return None
    import re

    return {re.split(r"[./=]", o.lstrip("+~"), maxsplit=1)[0] for o in hc.overrides.task}


def print_tree(cfg, path: Path | None = None, full: bool = False) -> None:
    """The resolved config as a tree, groups in composition order. Groups the command did not touch are
    one line each (their option name) unless ``full`` (print_config=full): the whole tree is ~130 lines."""
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    changed = None if full else _changed_groups()
    choices = {}
    if changed is not None:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices
    tree = Tree(
        "config" + ("" if changed is None else " (groups at their defaults folded; print_config=full shows all)"),
        guide_style="dim",
    )
    for key, value in cfg.items():
        if changed is not None and key not in changed and OmegaConf.is_config(value):
            tree.add(f"{key}: {choices.get(key, 'default')}", style="dim")
            continue
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
        raise TunelabError(
            f"Could not build {where} ({target}): {cause or err}".strip()
            + f"\nCheck the keys under '{where}' (tunelab train --cfg job shows them)."
        ) from None
    except TunelabError:
        raise


def install_override_hints() -> None:
    """Answer a misspelt override key with the nearest existing key, not Hydra's "+key" advice.

    For ``optimizer.lrr=1e-4`` Hydra says "To append to your config use +optimizer.lrr=1e-4", which
    adds the typo. Hydra has no hook for this message, so its override step is wrapped (the same
    step, a better error): the key is looked up where it would go, and the message names the nearest
    key there and the keys it has.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    original = ConfigLoaderImpl._apply_overrides_to_config
    if getattr(original, "tunelab_hints", False):
        return

    def apply(overrides, cfg):
        try:
            return original(overrides, cfg)
        except ConfigCompositionException as err:
            if not str(err).startswith("Could not override '"):
                raise
            key = str(err).split("'")[1]
            parts, node = key.split("."), cfg
            for depth, part in enumerate(parts):  # noqa: B007 (depth: where the walk stopped, read below)
                if not OmegaConf.is_dict(node) or part not in node:
                    break
                node = node[part]
            where = ".".join(parts[:depth]) or "the top level of the config"
            known = sorted(str(k) for k in node.keys()) if OmegaConf.is_dict(node) else []
            raise TunelabError(
                f"Could not override '{key}': {where} has no key '{parts[depth]}'.{did_you_mean(parts[depth], known)}"
                f" Its keys: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}.\n"
                f"Only to pass a new argument that its _target_ takes, add it with +{key}=VALUE."
            ) from None

    apply.tunelab_hints = True
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply)
