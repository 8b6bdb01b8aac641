"""Sweeps: resuming a multirun, DDP inside a multirun, comparing a sweep's runs, Optuna pruning.

Each module is imported only by the command that needs it (``tunelab compare`` stays light).
"""
