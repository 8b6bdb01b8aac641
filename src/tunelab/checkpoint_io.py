"""Checkpoint files that are never half-written, and that load without running pickled code.

Lightning's default writer goes through an fsspec transaction whose temporary file lives in the
system temp folder: moving it into the run directory is a copy when /tmp is another filesystem,
and nothing is fsynced, so a kill or a power cut during a save can leave a truncated
``last.ckpt`` that ``ckpt_path=last`` would then pick. Here the bytes go to a temporary file
next to the target, are fsynced, and replace it with one ``os.replace`` (atomic on POSIX): a
reader sees the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

TMP_PREFIX = ".tmp-"  # unfinished writes; never matched by *.ckpt globs


def atomic_torch_save(obj, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic local writes and ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if "://" in str(path):  # remote filesystems: keep Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        kwargs = {} if map_location is None else {"map_location": map_location}
        return super().load_checkpoint(path, weights_only=True, **kwargs)
