"""Checkpoint files that are never half-written, and that load without running pickled code.

Lightning's default writer goes through an fsspec transaction whose temporary file lives in the
system temp folder: moving it into the run directory is a copy when /tmp is another filesystem,
and nothing is fsynced, so a kill or a power cut during a save can leave a truncated
``last.ckpt`` that ``ckpt_path=last`` would then pick. Here the bytes go to a temporary file
next to the target, are fsynced, and replace it with one ``os.replace`` (atomic on POSIX): a
reader sees the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

from lightning.pytorch.plugins.io import TorchCheckpointIO

from tunelab.run.atomic import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic local writes and ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if "://" in str(path):  # remote filesystems: keep Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        kwargs = {} if map_location is None else {"map_location": map_location}
        return super().load_checkpoint(path, weights_only=True, **kwargs)
