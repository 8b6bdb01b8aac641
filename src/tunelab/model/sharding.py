"""FSDP2 for ``trainer=fsdp``: shard each transformer block, then the rest of the model.

Lightning's ModelParallelStrategy builds the device mesh and calls ``TuneModule.configure_model``,
which calls ``shard``. Sharding block by block lets FSDP gather one block's parameters at a time
(memory ~ one block + the shards) instead of the whole model. The same code runs on CPU with
gloo (tests here) and on GPUs with nccl.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tunelab.errors import TunelabError
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


# A sharded checkpoint folder may come from a shared file system: reading it must never run code.
# torch's reader unpickles .metadata with plain pickle, and its load planner reads the non-tensor items
# (optimizer param_groups) with torch.load(weights_only=False); Lightning's reader of the folder
# (_load_distributed_checkpoint, and resume) uses both. The reader and planner below replace exactly
# those two reads with restricted ones; meta.pt (Lightning's extra state) is read with weights_only=True.


def _weights_only(stream, where: str):
    import pickle

    import torch

    try:
        return torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line]  # torch names the global
        detail = (lines[0] if lines else str(err))[:300]
        raise TunelabError(
            f"Refused to load {where}: it holds objects that loading would run as code "
            f"({detail}). Nothing of it was loaded; use a checkpoint folder you trust."
        ) from None


def _safe_reader(path: Path):
    from torch.distributed.checkpoint import FileSystemReader

    from tunelab.run.safe_pickle import load_dcp_metadata

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            from torch.distributed.checkpoint.metadata import StorageMeta

            metadata = load_dcp_metadata(self._get_metadata_path(kwargs.get("rank")))
            if getattr(metadata, "storage_meta", None) is None:  # as FileSystemReader.read_metadata
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(path)


def _safe_planner(path: Path):
    import io

    import torch
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner

    class SafePlanner(_EmptyStateDictLoadPlanner):
        def load_bytes(self, read_item, value):
            obj = _weights_only(value, f"{path} (item {read_item.dest_index.fqn})")
            clean = io.BytesIO()  # what the parent class reads back, now known to hold plain data
            torch.save(obj, clean)
            clean.seek(0)
            super().load_bytes(read_item, clean)

    return SafePlanner()


def check_sharded_checkpoint(path) -> None:
    """Refuse a sharded checkpoint folder whose pickled parts would run code, before Lightning reads it
    (resume): .metadata through the allow-list, each non-tensor item and meta.pt with weights_only."""
    import io

    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    from tunelab.run.safe_pickle import load_dcp_metadata

    path = Path(path)
    metadata = load_dcp_metadata(path / ".metadata")
    for index, info in (metadata.storage_data or {}).items():
        if not isinstance(metadata.state_dict_metadata.get(index.fqn), BytesStorageMetadata):
            continue  # tensors: torch reads them with weights_only=True
        if info.transform_descriptors:
            raise TunelabError(
                f"{path}: item {index.fqn} is stored transformed ({info.transform_descriptors}); "
                "tunelab checks only plain sharded checkpoints (as Lightning writes them)."
            )
        shard = path / info.relative_path
        if shard.parent != path:
            raise TunelabError(f"{path / '.metadata'} points outside its folder ({info.relative_path}).")
        with open(shard, "rb") as f:
            f.seek(info.offset)
            _weights_only(io.BytesIO(f.read(info.length)), f"{shard} (item {index.fqn})")
    if (path / "meta.pt").is_file():
        _weights_only(path / "meta.pt", str(path / "meta.pt"))


def consolidated_checkpoint(path) -> dict:
    """A sharded checkpoint folder (``*.distcp`` + ``.metadata`` + ``meta.pt``) as one ordinary checkpoint
    dict: Lightning's _load_distributed_checkpoint, with the safe reader and planner."""
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    path = Path(path)
    check_sharded_checkpoint(path)  # a clear error first: torch's loader would wrap it in a CheckpointException
    checkpoint: dict = {}
    _load_state_dict(checkpoint, storage_reader=_safe_reader(path), planner=_safe_planner(path), no_dist=True)
    if (path / "meta.pt").is_file():
        checkpoint.update(_weights_only(path / "meta.pt", str(path / "meta.pt")))
    return checkpoint
