"""Read the pickled ``.metadata`` of a sharded (torch.distributed.checkpoint) checkpoint without running code.

torch's ``FileSystemReader.read_metadata`` calls ``pickle.load`` on it: a planted file runs anything
(``os.system``) the moment it is read, and ``weights_only`` does not apply to it. torch has no safe
reader for this file (``torch.load``'s weights_only unpickler expects torch.save's format, not a bare
pickle), so tunelab unpickles it with an allow-list: exactly the classes torch itself writes there
(listed from a real 2-process FSDP2 checkpoint with pickletools; see tests/run/test_safe_pickle.py).
"""

from __future__ import annotations

import pickle
from pathlib import Path

from tunelab.errors import TunelabError

# (module, name) pairs a checkpoint's metadata is made of. The checkpoint's own dataclasses:
_DCP_METADATA = {
    "Metadata",
    "MetadataIndex",
    "StorageMeta",
    "TensorProperties",
    "TensorStorageMetadata",
    "BytesStorageMetadata",
    "ChunkStorageMetadata",
    "_MEM_FORMAT_ENCODING",
}
ALLOWED = {
    *(("torch.distributed.checkpoint.metadata", name) for name in _DCP_METADATA),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),  # where each item lies in the *.distcp files
    ("torch", "Size"),  # shapes and offsets
    ("torch.serialization", "_get_layout"),  # layout by name ("torch.strided"): a dictionary lookup
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),  # StorageMeta.checkpoint_id
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
    *(("builtins", name) for name in ("set", "frozenset", "list", "dict", "tuple")),
}


def _is_dtype(module: str, name: str) -> bool:
    import torch

    return module == "torch" and "." not in name and isinstance(getattr(torch, name, None), torch.dtype)


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED or _is_dtype(module, name):
            return super().find_class(module, name)
        raise TunelabError(
            f"Refused to load {self.path}: it asks to import {module}.{name}, which is not one of the classes a "
            "sharded checkpoint's metadata is made of. Unpickling it could run code, so nothing of it was loaded. "
            "Use a checkpoint folder you trust (one that tunelab train wrote)."
        )


def load_dcp_metadata(path) -> object:
    """The ``Metadata`` pickled in a sharded checkpoint's ``.metadata`` file, or a TunelabError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            metadata = _MetadataUnpickler(f, path).load()
    except TunelabError:
        raise
    except Exception as err:  # truncated, not a pickle, a class with other fields...
        raise TunelabError(
            f"Cannot read the sharded checkpoint metadata {path}: {type(err).__name__}: "
            f"{str(err)[:200]}. The checkpoint folder may be incomplete; use another one."
        ) from None
    from torch.distributed.checkpoint.metadata import Metadata

    if not isinstance(metadata, Metadata):
        raise TunelabError(f"{path} holds a {type(metadata).__name__}, not a sharded checkpoint's Metadata.")
    return metadata
