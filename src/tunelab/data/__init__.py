"""Data: sources (hub, local files, built-in offline corpora) and ``TuneDataModule``."""

from tunelab.data.datamodule import TuneDataModule

__all__ = ["TuneDataModule"]
