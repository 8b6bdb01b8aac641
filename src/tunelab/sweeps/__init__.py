"""Sweeps: comparing a sweep's runs (statistics, per-example tests), rerunning the best with more seeds,
estimating a sweep's cost before it runs, Optuna search, SLURM through submitit.

Each module is imported only by the command that needs it (``tunelab compare`` stays light).
"""
