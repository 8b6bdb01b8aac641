"""Sweeps on a real one-node SLURM cluster (scripts/slurm-local.sh; `make test` starts it).

Every test submits real jobs with sbatch through `tunelab train -m hydra/launcher=slurm`, keeps its
job folder under tmp_path, and cancels its jobs (by a job name of its own) at the end. Run them alone
with `pytest -m slurm`. The machine's 2 cores are shared: time limits are generous, steps tiny.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from helpers.runs import ROOT
from helpers.slurm_jobs import array_tasks, job_env, job_logs, metrics, start, submit, sweep_command, wait_for

pytestmark = pytest.mark.slurm
TESTS = ROOT / "tests"  # helpers/ (the probes the jobs load) is under tests/
SCRIPT = ROOT / "scripts" / "slurm-local.sh"


@pytest.fixture(scope="module")
def cluster():
    """The local cluster is up (started here if it is not): a test never skips for want of one."""
    if subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode != 0:
        started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
        if started.returncode != 0:
            pytest.fail(
                "The local SLURM cluster is not running and could not be started: "
                f"{(started.stderr or started.stdout).strip()}\nStart it with `make slurm-up` "
                "(scripts/slurm-local.sh start: installs slurm-wlm and munge with apt, as root).",
                pytrace=False,
            )


@pytest.fixture
def job_name(cluster):
    """A job name of this test's own: its jobs are cancelled at the end, whatever happened."""
    name = f"tunelab-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True)


@pytest.mark.parametrize(
    "overrides, gpus, tasks, cpus",
    [
        ([], None, 1, 1),
        (["trainer=ddp"], None, 2, 1),  # 2 CPU ranks: 2 tasks, no GPU
        (["trainer=gpu"], 1, 1, 1),
        (["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4", "data.num_workers=3"], 4, 4, 4),
        (["trainer=gpu", "hydra.launcher.gpus_per_node=8"], 8, 1, 1),  # a value given wins
    ],
)
def test_launcher_resources_follow_the_trainer(overrides, gpus, tasks, cpus):
    from hydra import compose, initialize_config_dir

    import tunelab.sweeps.slurm  # noqa: F401  (its resolvers; `tunelab train` imports it)
    from tunelab.config import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        launcher = compose(
            "train", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True
        ).hydra.launcher
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.cpus_per_task, launcher.nodes) == (
        gpus,
        tasks,
        cpus,
        1,
    )


def test_a_two_job_sweep_runs_on_the_cluster(tiny_backbone, tmp_path, job_name):
    sweep = tmp_path / "sweep"
    result = submit(tmp_path, sweep, job_name, tiny_backbone, "seed=1,2")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for job in (0, 1):
        assert metrics(sweep / str(job))["seed"] == job + 1
    (array,) = {task.split("_")[0] for task in array_tasks(sweep)}
    assert array_tasks(sweep) == [f"{array}_0", f"{array}_1"]
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    # a CPU trainer asks for no GPU, one task, the preemption signal; job states came from squeue
    assert "--gpus" not in script and "--ntasks-per-node=1" in script and "--signal=USR1@120" in script
    assert "sacct" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_a_refused_submission_says_why_and_which_key_to_change(tiny_backbone, tmp_path, job_name):
    result = submit(tmp_path, tmp_path / "sweep", job_name, tiny_backbone, "trainer=gpu")  # this node has no GPU
    assert result.returncode != 0
    assert 'sbatch said "Invalid generic resource (gres) specification"' in result.stderr
    assert "hydra.launcher.gpus_per_node=1" in result.stderr and "trainer.accelerator=cpu" in result.stderr
    assert "Traceback" not in result.stderr and "Nothing was submitted" in result.stderr


def test_ddp_runs_one_srun_task_per_rank_with_the_metrics_of_lightnings_own_launch(tiny_backbone, tmp_path, job_name):
    sweep, ranks = tmp_path / "sweep", tmp_path / "ranks.jsonl"
    probe = ["+callbacks.ranks._target_=helpers.slurm_probes.RecordRank", f"+callbacks.ranks.path={ranks}"]
    result = submit(tmp_path, sweep, job_name, tiny_backbone, "trainer=ddp", *probe)
    assert result.returncode == 0, result.stderr[-3000:]
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "--ntasks-per-node=2" in script  # derived from trainer.devices=2
    lines = [json.loads(line) for line in ranks.read_text().splitlines()]
    # SLURM started both ranks (SLURM_PROCID = Lightning's rank), as two processes of one job: no re-launch
    assert sorted((r["rank"], r["slurm_procid"], r["world"]) for r in lines) == [(0, "0", 2), (1, "1", 2)]
    assert len({r["pid"] for r in lines}) == 2 and len({r["job"] for r in lines}) == 1
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0"]

    # the same run, its ranks started by Lightning on this machine (no SLURM): same numbers
    local = tmp_path / "local"
    env = {k: v for k, v in job_env(tmp_path).items() if not k.startswith("SLURM_")}
    same = [a for a in sweep_command(sweep, job_name, tiny_backbone, "trainer=ddp")[4:] if not a.startswith("hydra.")]
    done = subprocess.run(
        [sys.executable, "-m", "tunelab", "train", *same[1:], f"hydra.run.dir={local}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert metrics(sweep / "0")["metrics"] == metrics(local)["metrics"]
    assert metrics(sweep / "0")["global_steps"] == metrics(local)["global_steps"] == 4  # 64 rows / (16 x 2 ranks) x 2


def _preempted_run(tmp_path, job_name, backbone, *extra, steps="6", to=()):
    """Start a sweep, send SIGUSR1 to the job that reaches step 6 (epoch 2 of 2), wait for the sweep to end."""
    sweep, marker, ranks = tmp_path / "sweep", tmp_path / "at-step-6", tmp_path / "ranks.jsonl"
    process = start(
        tmp_path,
        sweep,
        job_name,
        backbone,
        "logger=[csv,wandb]",
        *extra,
        "+callbacks.wait._target_=helpers.slurm_probes.WaitAtStep",
        f"+callbacks.wait.marker={marker}",
        f"+callbacks.wait.step={steps}",
        "+callbacks.ranks._target_=helpers.slurm_probes.RecordRank",
        f"+callbacks.ranks.path={ranks}",
    )
    try:
        wait_for(marker.exists, 400, "the job reached step 6", process)
        # what SLURM sends the job's tasks signal_delay_s before the time limit (--signal=USR1@N);
        # to=("--batch",): to the batch shell only, as with --signal=B:USR1@N
        subprocess.run(["scancel", "--signal=USR1", *to, marker.read_text()], check=True)
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    return (
        sweep,
        process.returncode,
        (tmp_path / "sweep.log").read_text(),
        [json.loads(line) for line in ranks.read_text().splitlines()],
    )


def _check_resumed(sweep, ranks, runs=("0",)):
    run = sweep / "0"
    assert [r["restarts"] for r in ranks] == ["0", "1"]  # the same SLURM job, run twice
    assert len({r["job"] for r in ranks}) == 1
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "completed" and status["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    assert "Restored all states from the checkpoint" in job_logs(sweep)  # Lightning's own word
    # one run folder, one W&B run: the resumed run wrote a second offline folder under the same id
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == list(runs)
    ids = {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2 and ids == {
        (run / "wandb" / "run-id").read_text().strip()
    }
    return metrics(run)


def test_sigusr1_saves_requeues_and_the_job_resumes_in_its_run_folder(tiny_backbone, tmp_path, job_name):
    # job 0 gets SIGUSR1 at step 6; job 1, the same run without the signal, is the reference
    sweep, code, log, ranks = _preempted_run(tmp_path, job_name, tiny_backbone, steps="6,1000")
    assert code == 0, log[-3000:]
    logs = job_logs(sweep)
    assert "Caught signal SIGUSR1" in logs and "this job is preempted" in logs and "Requeued job" in logs
    resumed = _check_resumed(sweep, [r for r in ranks if r["run"] == str(sweep / "0")], runs=("0", "1"))
    straight = metrics(sweep / "1")
    assert [r["restarts"] for r in ranks if r["run"] == str(sweep / "1")] == ["0"]
    assert resumed["global_steps"] == straight["global_steps"] == 8
    # the mid-epoch save resumes at the batch after it (tunelab/data/samplers.py, ResumableLoader): every float equal
    assert resumed["metrics"] == straight["metrics"]


def test_a_timed_out_job_is_requeued_up_to_max_num_timeout_and_resumes(tiny_backbone, tmp_path, job_name):
    # with a 5-minute limit submitit counts any SIGUSR1 as the time-limit warning (it came after the
    # job's guaranteed time): requeued once (max_num_timeout=1), then it finishes. The signal goes to
    # the batch shell only here; the job script passes it on to the task.
    sweep, code, log, ranks = _preempted_run(
        tmp_path,
        job_name,
        tiny_backbone,
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.max_num_timeout=1",
        to=("--batch",),
    )
    assert code == 0, log[-3000:]
    logs = job_logs(sweep)
    assert "this job is timed-out" in logs and "Requeued job" in logs and "(0 remaining timeouts)" in logs
    assert _check_resumed(sweep, ranks)["global_steps"] == 8


def test_a_cancelled_sweep_resumes_skipping_finished_jobs(tiny_backbone, tmp_path, job_name):
    sweep = tmp_path / "sweep"
    # job 0 is quick, job 1 slow: cancel the whole array once 0 finished and 1 saved its first epoch
    args = ["+callbacks.slow._target_=helpers.sweep_probes.SlowSteps", "+callbacks.slow.seconds=0,3"]
    process = start(tmp_path, sweep, job_name, tiny_backbone, *args)
    try:
        wait_for(
            lambda: (sweep / "0" / "metrics.json").exists() and (sweep / "1" / "checkpoints" / "last.ckpt").exists(),
            400,
            "job 0 to finish and job 1 to save last.ckpt",
            process,
        )
        assert not (sweep / "1" / "metrics.json").exists()
        (array,) = {task.split("_")[0] for task in array_tasks(sweep)}
        subprocess.run(["scancel", array], check=True)
        assert process.wait(timeout=300) != 0
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "sweep.log").read_text()
    # job 1 got SIGTERM from scancel: it saved, and the sweep says how to go on
    assert (
        f"Job #1 of the sweep was stopped by SIGTERM (scancel, or a preemption) after saving {sweep / '1' / 'checkpoints' / 'last.ckpt'}"
        in log
    )
    assert "plus resume=true" in log and "Traceback" not in log
    first = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    result = submit(tmp_path, sweep, job_name, tiny_backbone, *args, "resume=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == first  # not rerun
    assert f"{sweep / '0'} finished earlier; skipped." in job_logs(sweep)
    status = json.loads((sweep / "1" / "run.json").read_text())
    assert status["status"] == "completed" and status["resumed_from"] == str(sweep / "1" / "checkpoints" / "last.ckpt")
    assert metrics(sweep / "1")["global_steps"] == 8
