"""Keep credentials out of everything a run writes: config dumps, run.json, logs, W&B config.

A secret is the value of an environment variable whose name looks like one (``WANDB_API_KEY``,
``HF_TOKEN``, anything ending in ``_TOKEN``, ``_KEY``, ``_SECRET`` or ``_PASSWORD``), and the value
of any config / metadata key with such a name (``api_key``, ``token``, ...). Secrets are replaced by
``***`` wherever they appear, also inside longer strings (a command line, a URL).

Values typed as config overrides (``+foo.api_key=...``) are learnt from the job's config by the
Hydra callback ``MaskSecrets`` (conf/hydra/default.yaml) and then masked like the environment's,
in every text this process writes or prints afterwards. Hydra writes ``.hydra/*.yaml`` and a
sweep's ``multirun.yaml`` itself, before any tunelab code runs: the callback rewrites them masked
right after (``on_job_start``, ``on_multirun_end``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

MASK = "***"
SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|^WANDB_API_KEY$|^HF_TOKEN$", re.IGNORECASE
)
_MIN_LENGTH = 6  # shorter values ("1", "true") are too common to mask safely
_LEARNT: set[str] = set()  # values of secret-named config keys of this process's jobs (see learn)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(str(name).replace("-", "_").replace(".", "_")))


def secret_values(environ=None) -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlaps mask fully)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and v and len(v) >= _MIN_LENGTH}
    return sorted(values | _LEARNT, key=len, reverse=True)


def config_secret_values(container) -> set[str]:
    """The values under secret-named keys of a config (as plain containers), and of ``key=value``
    override strings with a secret-named key (``+foo.api_key=VALUE`` in hydra.overrides.task)."""
    found: set[str] = set()

    def walk(node, secret: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, secret or is_secret_name(key))
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value, secret)
        elif isinstance(node, str) and "=" in node and not secret:
            key, value = node.split("=", 1)
            if is_secret_name(key.lstrip("+~").split(".")[-1]):
                walk(value.strip("'\""), True)
        elif secret and node is not None and not isinstance(node, bool) and str(node) != MASK:
            found.add(str(node))

    walk(container, False)
    return {v for v in found if len(v) >= _MIN_LENGTH}


def learn(cfg) -> None:
    """Remember the secret values of a (Hydra) config, so that every later scrub masks them as text too."""
    from omegaconf import OmegaConf

    overrides = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if overrides is not None:  # +foo.api_key=VALUE as typed
        _LEARNT.update(config_secret_values(list(overrides)))
    for key, node in cfg.items_ex(resolve=False):
        if key == "hydra":
            continue
        for resolve in (False, True):  # the raw text and what it resolves to (${oc.env:...})
            try:
                value = (
                    OmegaConf.to_container(node, resolve=resolve)
                    if OmegaConf.is_config(node)
                    else (cfg[key] if resolve else node)
                )
            except Exception:  # an interpolation that cannot resolve here: its raw text was learnt
                continue
            _LEARNT.update(config_secret_values({key: value}))


def scrub_text(text: str, values: list[str] | None = None) -> str:
    for value in secret_values() if values is None else values:
        text = text.replace(value, MASK)
    # `key=value` pairs on a command line (e.g. +logger.wandb.api_key=abc)
    return re.sub(
        r"([\w.\-]*(?:token|key|secret|password)[\w.\-]*=)([^\s,'\"]+)",
        lambda m: m.group(1) + (MASK if is_secret_name(m.group(1)[:-1].split(".")[-1]) else m.group(2)),
        text,
        flags=re.IGNORECASE,
    )


def scrub(obj, values: list[str] | None = None):
    """A copy of ``obj`` (dicts, lists, strings, scalars) with every secret masked."""
    values = secret_values() if values is None else values
    if isinstance(obj, dict):
        return {
            k: (MASK if is_secret_name(k) and obj[k] not in (None, "") else scrub(v, values)) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub(v, values) for v in obj)
    if isinstance(obj, str):
        return scrub_text(obj, values)
    return obj


def masked_config(cfg):
    """The resolved config with every secret masked (for printing it)."""
    from omegaconf import OmegaConf

    return OmegaConf.create(scrub(OmegaConf.to_container(cfg, resolve=True)))


def scrub_yaml_file(path: Path) -> None:
    """Rewrite a YAML file Hydra saved (config.yaml, hydra.yaml, multirun.yaml) with secrets masked:
    by key name (``api_key: ...``, any length), and by value anywhere in its text."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        return
    text = path.read_text()
    try:
        clean = OmegaConf.to_yaml(OmegaConf.create(scrub(OmegaConf.to_container(OmegaConf.load(path)))))
    except Exception:  # not a mapping/list OmegaConf reads: mask as text
        clean = scrub_text(text)
    if clean != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # jobs of one sweep may race on multirun.yaml
        tmp.write_text(clean)
        os.replace(tmp, path)


def scrub_files(folder: Path, pattern: str = "*.yaml") -> None:
    """Mask secrets in files already written (Hydra's own .hydra/*.yaml holds the raw overrides)."""
    for path in Path(folder).glob(pattern):
        scrub_yaml_file(path)


@contextmanager
def masked_argv():
    """``sys.argv`` with secrets masked, for libraries that record the command line (W&B's run metadata)."""
    original = sys.argv
    sys.argv = [scrub_text(a) for a in original]
    try:
        yield
    finally:
        sys.argv = original


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets in every record (added to the root logger's handlers)."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it when it is emitted
            return True
        clean = scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _masking_factory(make_record):
    def make(*args, **kwargs):
        record = make_record(*args, **kwargs)
        SecretFilter().filter(record)
        return record

    make.masks_secrets = True
    return make


def install_log_filter() -> None:
    """Mask every log record of this process. Hydra replaces the logging handlers for each job and
    again in the launcher (which logs each job's overrides), so a handler filter alone is lost:
    the record factory masks records as they are made, whatever handlers come later."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "masks_secrets", False):
        logging.setLogRecordFactory(_masking_factory(factory))
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())


class MaskSecrets:
    """Hydra callback (``hydra.callbacks.mask_secrets``): learn the secret values of the composed config,
    mask log records, and rewrite Hydra's own records masked right after Hydra wrote them.

    Hydra saves ``<job>/.hydra/*.yaml`` in ``run_job`` just before ``on_job_start``, and a sweep's
    ``multirun.yaml`` in the sweeper just after ``on_multirun_start`` (the config object must stay
    intact there: Hydra reads the jobs' overrides from it afterwards), so both are scrubbed after the fact.
    """

    def on_run_start(self, config, **kwargs) -> None:
        learn(config)
        install_log_filter()

    def on_multirun_start(self, config, **kwargs) -> None:
        learn(config)
        install_log_filter()  # the launcher logs each job's overrides ("#0 : +foo.api_key=...")

    def on_job_start(self, config, **kwargs) -> None:
        from hydra.types import RunMode

        learn(config)
        install_log_filter()  # run_job configured the job's logging just before
        output = Path(str(config.hydra.runtime.output_dir))
        if config.hydra.output_subdir is not None:
            scrub_files(output / str(config.hydra.output_subdir))
        if config.hydra.mode == RunMode.MULTIRUN:
            scrub_yaml_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")

    def on_multirun_end(self, config, **kwargs) -> None:
        scrub_yaml_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")

    def on_run_end(self, config, **kwargs) -> None:
        pass

    def on_job_end(self, config, job_return=None, **kwargs) -> None:
        from hydra.core.utils import JobStatus

        # a sweep prints a failed job's overrides to stderr ("Error executing job with overrides: [...]"),
        # and nothing else reads them after the job
        if job_return is not None and job_return.status == JobStatus.FAILED:
            job_return.overrides = scrub(list(job_return.overrides or []))
