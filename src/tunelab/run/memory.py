"""How much memory a run used (metrics.json's peak_memory_mb)."""

from __future__ import annotations


def peak_memory_mb() -> float:
    """Peak memory of this run: the GPU's peak allocation on CUDA, else the process's peak RSS."""
    import resource

    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB
