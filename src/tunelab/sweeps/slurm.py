"""SLURM through submitit: resources derived from the trainer, sbatch refusals as one clear message,
job states without accounting, and preemption / time limits that requeue and resume.

``conf/hydra/launcher/slurm.yaml`` uses hydra-submitit-launcher's SlurmLauncher; ``install`` adds:

* **Resources from the trainer** (resolvers used in that file; tunelab/sweeps/slurm_resources.py): GPUs are requested only when
  ``trainer.accelerator`` is gpu/cuda, one task per rank (``trainer.devices``), one CPU per task
  plus one per data-loader worker. A CPU cluster and a GPU cluster take the same defaults.
* **sbatch refusals** (slurm_resources.py): submitit raises ``FailedJobError`` with a traceback; ``install``'s launch turns
  it into a TunelabError quoting sbatch's reason and the ``hydra.launcher.*`` key that fixes it.
* **No accounting** (clusters without slurmdbd, ``scripts/slurm-local.sh``): submitit polls
  ``sacct``, which then fails on every poll ("accounting storage is disabled") and never reports a
  cancelled job as ended, so the sweep would wait forever. ``squeue_watcher`` asks ``squeue`` instead.
* **Preemption and time limits** (who owns SIGUSR1, and why): sbatch asks for ``--signal=USR1@<signal_delay_s>``.
  During training tunelab's ``PreemptionCheckpoint`` takes the signal (it saves last.ckpt at the
  next batch boundary, a consistent state; submitit's own handler would exit mid-step without
  saving, and Lightning's auto-requeue is invisible to submitit: the first run's error result
  would end the sweep while SLURM reruns the job). The job then hands the signal to submitit's
  handler (``hand_over_preemption``), which counts time-outs against ``max_num_timeout``,
  requeues the job with ``scontrol requeue`` and exits without a result, so the sweep keeps
  waiting. The requeued job (``SLURM_RESTART_COUNT`` > 0) resumes from last.ckpt in the same run
  folder (``tunelab.run.resume``), with the same W&B run id (``<run>/wandb/run-id``). A signal
  sent to the batch shell only is passed on to the tasks (``FORWARD_USR1``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time

from tunelab.errors import TunelabError
from tunelab.sweeps.slurm_resources import (  # noqa: F401  (registers the resolvers slurm.yaml uses)
    cpus_per_task,
    gpus_per_node,
    sbatch_refusal,
    tasks_per_node,
)


def squeue_watcher(delay_s: int = 600):
    """Job states from ``squeue`` for clusters without accounting (submitit's watcher asks ``sacct``).

    squeue lists a job until MinJobAge seconds after it ended; one that is no longer listed has
    ended (state ``ENDED``), so a cancelled job stops the wait instead of being polled forever.
    Built on submitit's own watcher (same caching, same polling delays): only the command and its
    reading differ.
    """
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueWatcher(SlurmInfoWatcher):
        def update(self) -> None:
            unfinished = self._registered - self._finished
            ids = sorted({x.split("_")[0] for x in unfinished})
            if not ids:
                return
            self._num_calls += 1
            self._last_status_check = time.time()
            out = subprocess.run(
                ["squeue", "--states=all", "--noheader", "--format=%i|%T|%N", f"--jobs={','.join(ids)}"],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0 and "Invalid job id" not in out.stderr:
                return  # controller busy or down: keep the states we have, ask again later
            info = self.read_info("JobID|State|NodeList\n" + out.stdout)
            for job_id in unfinished:
                info.setdefault(job_id, {"JobID": job_id, "State": "ENDED", "NodeList": ""})
            self._info_dict.update(info)
            for job_id in unfinished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

    return SqueueWatcher(delay_s=delay_s)


def accounting_enabled() -> bool:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    match = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out.stdout, re.MULTILINE)
    return not (match and match.group(1).endswith("/none"))


PREEMPT_SIGNAL = "USR1"

# First line of every job script: the batch shell passes SIGUSR1 on to srun, which passes it to the
# tasks. Without it a signal sent to the batch shell only (`scancel --signal=USR1 --batch`,
# `--signal=B:USR1@N`) kills bash (its default for SIGUSR1) and the job with it. srun runs in the
# background because bash runs a trap only once the foreground command has ended.
FORWARD_USR1 = (
    'srun() { command srun "$@" & local pid=$! rc; trap "kill -USR1 $pid" USR1; '
    "while wait $pid; rc=$?; [ $rc -gt 128 ] && kill -0 $pid 2>/dev/null; do :; done; "
    "trap - USR1; return $rc; }"
)


def _prepare_submitit() -> None:
    """Before submitting: the preemption signal (USR1, for the jobs too), and squeue when sacct cannot answer."""
    os.environ.setdefault("SUBMITIT_PREEMPT_SIGNAL", PREEMPT_SIGNAL)  # jobs inherit it (sbatch --export=ALL)
    from submitit.core.job_environment import JobEnvironment
    from submitit.slurm.slurm import SlurmJob

    JobEnvironment.USR_SIG = os.environ["SUBMITIT_PREEMPT_SIGNAL"]
    if not accounting_enabled():
        SlurmJob.watcher = squeue_watcher()


@contextlib.contextmanager
def _quiet_sbatch():
    """submitit prints sbatch's stderr before raising; the error we raise quotes it once."""
    from submitit.slurm.slurm import SlurmExecutor

    original = SlurmExecutor._submit_command

    def submit(self, command):
        with contextlib.redirect_stderr(io.StringIO()):
            return original(self, command)

    SlurmExecutor._submit_command = submit
    try:
        yield
    finally:
        SlurmExecutor._submit_command = original


def hand_over_preemption(error: BaseException) -> None:
    """In a SLURM job: a run stopped by the preemption signal goes to submitit's handler, which requeues it.

    Called by ``distributed.job_world`` when the job's training raised. submitit's handler (registered
    for the same signal before the job started) tells preemption from time-out, requeues and exits
    without a result file, so the sweep keeps waiting for the requeued run; past ``max_num_timeout``
    it raises and the sweep reports the job as failed. Other ranks exit quietly: rank 0 requeues the
    whole job.
    """
    from tunelab.callbacks import PreemptedError

    if (
        os.environ.get("SUBMITIT_EXECUTOR") != "slurm"
        or not isinstance(error, PreemptedError)
        or error.signal_name != "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", PREEMPT_SIGNAL)
    ):
        return
    signum = getattr(signal, error.signal_name)
    handler = signal.getsignal(signum)
    if callable(handler) and getattr(handler, "__name__", "") == "checkpoint_and_try_requeue":
        handler(signum, None)  # rank 0: requeues and exits; other ranks: returns
        sys.exit(-1)


def _stopped_job_says_resume(ret, number: int):
    """A job stopped by SIGTERM (scancel, a preemption without requeue) saved its state: in a sweep the
    way back is ``resume=true``, not the single run's ``ckpt_path=last``."""
    from hydra.core.utils import JobStatus

    from tunelab.callbacks import PreemptedError

    error = getattr(ret, "_return_value", None)
    if ret.status == JobStatus.FAILED and isinstance(error, PreemptedError):
        ret._return_value = TunelabError(
            f"Job #{number} of the sweep was stopped by {error.signal_name} (scancel, or a preemption) after "
            f"saving {error.saved}.\nRerun the same command plus resume=true: finished jobs are skipped, "
            "interrupted ones continue from their last.ckpt."
        )
    return ret


def install() -> None:
    """Add the launcher-side behaviour to hydra-submitit-launcher's SlurmLauncher (idempotent).

    Hydra accepts launchers only from the ``hydra_plugins`` package, so tunelab wraps the plugin's
    ``launch`` instead of shipping a plugin of its own. Hydra's plugin scan re-executes the plugin
    modules once per process (redefining their classes), so the scan runs first."""
    from hydra.core.plugins import Plugins

    Plugins.instance()
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    if getattr(SlurmLauncher.launch, "_tunelab", False):
        return
    original = SlurmLauncher.launch

    def launch(self, job_overrides, initial_job_idx):
        from submitit.core.utils import FailedJobError, UncompletedJobError

        _prepare_submitit()
        self.params["setup"] = [
            FORWARD_USR1,
            *[line for line in self.params.get("setup") or [] if line != FORWARD_USR1],
        ]
        try:
            with _quiet_sbatch():
                return [
                    _stopped_job_says_resume(ret, initial_job_idx + i)
                    for i, ret in enumerate(original(self, job_overrides, initial_job_idx))
                ]
        except FileNotFoundError as error:
            raise TunelabError(
                f"hydra/launcher=slurm needs SLURM's commands here ({error.filename} is missing): "
                "run the sweep on the cluster's login node, or start a local one-node "
                "cluster with scripts/slurm-local.sh start."
            ) from None
        except FailedJobError as error:
            message = str(error)
            if "failed during processing" not in message:  # sbatch itself failed: nothing was submitted
                raise sbatch_refusal(message, self.params) from None
            # the job's own errors come back as failed JobReturns; this is submitit's (e.g. time-outs)
            last = [line for line in message.splitlines() if line.strip()][-1].strip()
            raise TunelabError(
                f"A SLURM job of the sweep failed outside training: {last}\nIts log is in "
                f"{self.config.hydra.sweep.dir}/.submitit/. Raise hydra.launcher.timeout_min or "
                "hydra.launcher.max_num_timeout if it ran out of time, then rerun the same command plus "
                "resume=true."
            ) from None
        except UncompletedJobError as error:  # cancelled, killed, node failure: no result came back
            first = " ".join(str(error).strip().splitlines()[:2])
            raise TunelabError(
                f"A SLURM job of the sweep ended without a result: {first}\nIts log is in "
                f"{self.config.hydra.sweep.dir}/.submitit/. Rerun the same command plus resume=true: finished "
                "jobs are skipped, interrupted ones continue from their last.ckpt."
            ) from None

    launch._tunelab = True
    SlurmLauncher.launch = launch
