"""tunelab: Hydra-configured fine-tuning of Hugging Face backbones with PyTorch Lightning.

Importing the package is cheap on purpose (``tunelab --help`` must stay fast); the heavy pieces
live in submodules: ``tunelab.model.module.TuneModule``, ``tunelab.data.TuneDataModule``,
``tunelab.tasks``.
"""

__version__ = "0.1.0"
