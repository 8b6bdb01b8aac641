"""Keep credentials out of everything a run writes: config dumps, run.json, logs, W&B config.

A secret is the value of an environment variable whose name looks like one (``WANDB_API_KEY``,
``HF_TOKEN``, anything ending in ``_TOKEN``, ``_KEY``, ``_SECRET`` or ``_PASSWORD``), and the value
of any config / metadata key with such a name (``api_key``, ``token``, ...). Secrets are replaced by
``***`` wherever they appear, also inside longer strings (a command line, a URL).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

MASK = "***"
SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|^WANDB_API_KEY$|^HF_TOKEN$",
                         re.IGNORECASE)
_MIN_LENGTH = 6  # shorter values ("1", "true") are too common to mask safely


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(str(name).replace("-", "_").replace(".", "_")))


def secret_values(environ=None) -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlaps mask fully)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and v and len(v) >= _MIN_LENGTH}
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str, values: list[str] | None = None) -> str:
    for value in secret_values() if values is None else values:
        text = text.replace(value, MASK)
    # `key=value` pairs on a command line (e.g. +logger.wandb.api_key=abc)
    return re.sub(r"([\w.\-]*(?:token|key|secret|password)[\w.\-]*=)([^\s,'\"]+)",
                  lambda m: m.group(1) + (MASK if is_secret_name(m.group(1)[:-1].split(".")[-1]) else m.group(2)),
                  text, flags=re.IGNORECASE)


def scrub(obj, values: list[str] | None = None):
    """A copy of ``obj`` (dicts, lists, strings, scalars) with every secret masked."""
    values = secret_values() if values is None else values
    if isinstance(obj, dict):
        return {k: (MASK if is_secret_name(k) and obj[k] not in (None, "") else scrub(v, values)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub(v, values) for v in obj)
    if isinstance(obj, str):
        return scrub_text(obj, values)
    return obj


def scrub_files(folder: Path, pattern: str = "*.yaml") -> None:
    """Mask secrets in files already written (Hydra's own .hydra/*.yaml holds the raw overrides)."""
    values = secret_values()
    for path in Path(folder).glob(pattern):
        text = path.read_text()
        clean = scrub_text(text, values)
        if clean != text:
            path.write_text(clean)


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets in every record (added to the root logger's handlers)."""

    def filter(self, record):
        message = record.getMessage()
        clean = scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filter() -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
