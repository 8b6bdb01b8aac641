"""Silence messages that say nothing about the user's run (advertising, library-internal deprecations)."""

from __future__ import annotations

import logging
import warnings


class _DropMatching(logging.Filter):
    def __init__(self, *needles: str):
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.needles)


def silence_known_noise() -> None:
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropMatching("litlogger"))
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
