"""FSDP2 for ``trainer=fsdp``: shard each transformer block, then the rest of the model.

Lightning's ModelParallelStrategy builds the device mesh and calls ``TuneModule.configure_model``,
which calls ``shard``. Sharding block by block lets FSDP gather one block's parameters at a time
(memory ~ one block + the shards) instead of the whole model. The same code runs on CPU with
gloo (tests here) and on GPUs with nccl.
"""

from __future__ import annotations

import torch

from tunelab.tuning.parts import blocks as transformer_blocks


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard(model: torch.nn.Module, device_mesh) -> None:
    """Apply ``fully_shard`` over the mesh's data-parallel dimension (once; later calls do nothing)."""
    from torch.distributed.fsdp import fully_shard

    if is_sharded(model):  # configure_model runs again for test/predict after fit
        return
    mesh = device_mesh["data_parallel"] if device_mesh.mesh_dim_names else device_mesh
    for _, block in transformer_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def consolidated_checkpoint(path) -> dict:
    """A sharded checkpoint folder (``*.distcp`` + ``meta.pt``) as one ordinary checkpoint dict."""
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    return _load_distributed_checkpoint(path)
