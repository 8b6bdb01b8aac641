"""Lightning callbacks tunelab adds (plain callbacks, no Hydra needed; conf/callbacks/ turns them on).

checkpoints.LastCheckpoint        last.ckpt at every epoch end (and every N steps), never a NaN state
checkpoints.FiniteLossGuard       stop at the first NaN/inf loss, naming the last good checkpoint
checkpoints.PreemptionCheckpoint  SIGTERM / SIGUSR1: save last.ckpt, then stop
random_state.RandomState          RNG states in checkpoints: a resumed run draws the same dropout masks
unfreeze.GradualUnfreezing        unfreeze one more block per epoch, top down (ULMFiT)
"""

from tunelab.callbacks.checkpoints import (
    FiniteLossGuard,
    LastCheckpoint,
    PreemptedError,
    PreemptionCheckpoint,
    best_checkpoint_callback,
)
from tunelab.callbacks.random_state import RandomState

__all__ = [
    "FiniteLossGuard",
    "LastCheckpoint",
    "PreemptedError",
    "PreemptionCheckpoint",
    "RandomState",
    "best_checkpoint_callback",
]
