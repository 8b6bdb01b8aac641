"""Optuna search with pruning, as a Hydra sweeper: ``tunelab train -m sweeps=optuna_lr``.

Why not hydra-optuna-sweeper: it pins optuna<3 and its trials never see the ``optuna.Trial``,
so Lightning cannot report to it and nothing is ever pruned (STACK.md). Here:

  * the sweeper (``run_search``) keeps the study in an SQLite file in the sweep folder, asks
    ``n_jobs`` trials at a time and launches them as ordinary sweep jobs through whatever launcher
    is configured (basic, joblib, submitit, SLURM), so a trial may run in another process or machine;
  * each job gets a ``ReportToOptuna`` callback (tunelab/sweeps/optuna_trial.py) (added by overrides) that opens the same study,
    reports the followed validation metric after every validation, and raises
    ``optuna.TrialPruned`` when the pruner says so; the run ends with status "pruned";
  * the sweeper tells the study each trial's outcome: the best validation value of completed
    trials (from their metrics.json), PRUNED or FAIL; and writes ``<sweep>/optuna.json``.

Rerunning the same sweep with ``resume=true`` loads the study and runs only the missing trials.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.errors import TunelabError
from tunelab.sweeps.optuna_trial import ReportToOptuna, built  # noqa: F401  (ReportToOptuna: the old target)

CALLBACK = "+callbacks.optuna"


def suggest(trial, name: str, spec) -> object:
    """One value for ``name`` from its search-space spec ({type, low, high, log, step, choices})."""
    spec = dict(spec)
    kind = spec.pop("type", "categorical" if "choices" in spec else "float")
    if kind == "float":
        return trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step"))
    if kind == "int":
        return trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1))
    if kind == "categorical":
        return trial.suggest_categorical(name, list(spec["choices"]))
    raise TunelabError(f"hydra.sweeper.params.{name}: unknown type '{kind}'. Use float, int or categorical.")


DIRECTIONS = {"max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"}


def study_direction(direction: str | None, config, monitor: str | None) -> str:
    """maximize or minimize: the followed metric's own direction, task.metric_mode (min for perplexity or
    a loss); an explicit ``hydra.sweeper.direction`` that contradicts it is an error, not a silent flip."""
    from omegaconf import OmegaConf

    metric, mode = OmegaConf.select(config, "task.metric"), OmegaConf.select(config, "task.metric_mode")
    follows_task = monitor in (None, metric)
    if direction is not None and str(direction) not in DIRECTIONS:
        raise TunelabError(
            f"hydra.sweeper.direction must be maximize or minimize (or null: from task.metric_mode), got '{direction}'."
        )
    if direction is None:
        if not follows_task:
            raise TunelabError(
                f"hydra.sweeper.monitor={monitor} is not task.metric ({metric}): say which way is "
                "better with hydra.sweeper.direction=maximize or minimize."
            )
        if mode not in ("min", "max"):
            raise TunelabError(f"task.metric_mode must be 'min' or 'max', got '{mode}'.")
        return DIRECTIONS[mode]
    direction = DIRECTIONS[str(direction)]
    if follows_task and mode in ("min", "max") and direction != DIRECTIONS[mode]:
        raise TunelabError(
            f"hydra.sweeper.direction={direction} contradicts task.metric_mode={mode} of the followed "
            f"{metric}: the search would look for the worst trials. Drop hydra.sweeper.direction "
            "(it follows task.metric_mode) or set it to " + DIRECTIONS[mode] + "."
        )
    return direction


def _outcome(result, monitor: str | None = None) -> tuple[str, float | None, str]:
    """(state, value, note) of a finished job: the best followed validation value when it completed."""
    from hydra.core.utils import JobStatus

    if result.status == JobStatus.COMPLETED:
        summary = Path(result.hydra_cfg.hydra.runtime.output_dir) / "metrics.json"
        checkpoint = json.loads(summary.read_text())["monitor"] if summary.exists() else {}
        followed = monitor or checkpoint.get("metric", "")
        # the checkpoint's best is of task.metric; another followed metric has its last validation value
        value = checkpoint.get("best") if followed == checkpoint.get("metric") else None
        if value is None:  # no checkpoint callback, or another metric: the last validation value
            value = result.return_value.get(followed)
        return "complete", value, ""
    error = result._return_value
    if type(error).__name__ == "TrialPruned":
        return "pruned", None, str(error)
    return "fail", None, f"{type(error).__name__}: {str(error)[:300]}"


def _flow(spec) -> str:
    """A flat config as a Hydra override value: {_target_: optuna.pruners.MedianPruner, n_startup_trials: 2}."""
    if spec is None:
        return "null"
    from omegaconf import OmegaConf

    items = OmegaConf.to_container(spec, resolve=True).items()
    shown = {None: "null", True: "true", False: "false"}
    return (
        "{"
        + ", ".join(
            f"{k}: {shown.get(v, v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v}" for k, v in items
        )
        + "}"
    )


def run_search(
    sweeper,
    arguments: list[str],
    n_trials: int,
    n_jobs: int,
    params: dict,
    direction: str | None = None,
    monitor: str | None = None,
    study_name: str = "tunelab",
    storage: str | None = None,
    sampler=None,
    pruner=None,
    seeds_per_trial: int = 1,
):
    import optuna

    if not params:
        raise TunelabError(
            "The Optuna sweeper has no search space: set hydra.sweeper.params "
            "(see sweeps/optuna_lr.yaml), e.g. optimizer.lr: {type: float, low: 1e-5, high: 3e-4, log: true}"
        )
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    from omegaconf import OmegaConf

    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")  # as Hydra's sweeper does: resume finds it
    direction = study_direction(direction, sweeper.config, monitor)
    storage = storage or f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction=direction,
        load_if_exists=True,
        sampler=built(sampler),
        pruner=built(pruner),
    )
    _requeue_interrupted(study)
    arguments, seeds = _trial_seeds(arguments, sweeper.config, seeds_per_trial)
    results = []
    finished = sum(t.state.is_finished() and not t.user_attrs.get("interrupted") for t in study.trials)
    while finished < n_trials:
        trials = [study.ask() for _ in range(min(max(1, n_jobs), n_trials - finished))]
        batch = []
        # the pruner decides in the trial's process: it gets the same pruner config (a study's pruner
        # is not stored with the study)
        pruner_override = _flow(sweeper.config.hydra.sweeper.get("pruner"))
        for trial in trials:
            chosen = [f"{name}={suggest(trial, name, spec)!r}".replace("'", "") for name, spec in params.items()]
            report = [
                f"{CALLBACK}._target_=tunelab.sweeps.optuna_trial.ReportToOptuna",
                f"{CALLBACK}.storage='{storage}'",
                f"{CALLBACK}.study={study_name}",
                f"{CALLBACK}.trial={trial.number}",
                f"{CALLBACK}.monitor={monitor or 'null'}",
                f"{CALLBACK}.pruner={pruner_override}",
            ]
            # k seeds: k jobs (the first reports to the pruner: one curve per trial); the trial's value is their mean
            batch += [[*arguments, *chosen, *seed, *(report if i == 0 else [])] for i, seed in enumerate(seeds)]
        sweeper.validate_batch_is_legal(batch)
        returns = sweeper.launcher.launch(batch, initial_job_idx=trials[0].number * len(seeds))
        for j, trial in enumerate(trials):
            state, value, note = _mean_outcome(trial, returns[j * len(seeds) : (j + 1) * len(seeds)], monitor)
            study.tell(
                trial,
                value if state == "complete" else None,
                state={
                    "complete": optuna.trial.TrialState.COMPLETE,
                    "pruned": optuna.trial.TrialState.PRUNED,
                    "fail": optuna.trial.TrialState.FAIL,
                }[state],
            )
            shown = ", ".join(f"{k}={v}" for k, v in trial.params.items())
            print(
                f"[optuna] trial {trial.number} ({shown}): {state}"
                f"{f' {value:.4f}' if value is not None else ''}{f' - {note}' if note else ''}"
            )
        results.append(returns)
        finished += len(trials)
    _write_summary(study, sweep_dir / "optuna.json")
    return results


def _trial_seeds(arguments: list[str], config, k) -> tuple[list[str], list[list[str]]]:
    """hydra.sweeper.seeds_per_trial=k: every trial runs seeds s..s+k-1 (s: the command's seed), the same for
    all trials, so their runs pair in ``tunelab compare``. k=1: the command unchanged (one job per trial)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise TunelabError(f"hydra.sweeper.seeds_per_trial must be a positive integer, got {k!r}.")
    if k == 1:
        return arguments, [[]]
    given = [a.split("=", 1)[1] for a in arguments if a.startswith(("seed=", "+seed="))]
    try:
        base = int(given[-1] if given else config.seed)
    except ValueError:
        raise TunelabError(
            f"hydra.sweeper.seeds_per_trial={k} runs seeds seed..seed+{k - 1}: seed must be one "
            f"integer, got '{given[-1]}'."
        ) from None
    rest = [a for a in arguments if not a.startswith(("seed=", "+seed="))]
    return rest, [[f"seed={base + i}"] for i in range(k)]


def _mean_outcome(trial, returns, monitor) -> tuple[str, float | None, str]:
    """One trial's state and value over its seeds' jobs: failed if one failed, pruned if its reporting job was."""
    outcomes = [_outcome(result, monitor) for result in returns]
    if len(outcomes) == 1:
        return outcomes[0]
    for state in ("fail", "pruned"):
        for got, _, note in outcomes:
            if got == state:
                return state, None, note
    values = [value for _, value, _ in outcomes]
    if None in values:
        return "fail", None, "a seed's job logged no value of the followed metric"
    trial.set_user_attr("seed_values", values)
    return "complete", sum(values) / len(values), f"mean of {len(values)} seeds {', '.join(f'{v:.4f}' for v in values)}"


def _requeue_interrupted(study) -> None:
    """Resume: trials still RUNNING belong to a sweep that died. Close them (FAIL, marked interrupted,
    not counted) and ask their parameters again, so the search continues where it stopped."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
        print(f"[optuna] trial {trial.number} was interrupted; its parameters run again as a new trial")


def _write_summary(study, path: Path) -> None:
    from optuna.trial import TrialState

    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "last_step": max(t.intermediate_values, default=None),
            **({"seed_values": t.user_attrs["seed_values"]} if "seed_values" in t.user_attrs else {}),
        }
        for t in study.trials
    ]
    counts = {s.name.lower(): sum(t.state == s for t in study.trials) for s in TrialState}
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = (
        {"number": study.best_trial.number, "value": study.best_value, "params": study.best_params}
        if complete
        else None
    )
    path.write_text(
        json.dumps(
            {"direction": study.direction.name.lower(), "counts": counts, "best": best, "trials": trials}, indent=2
        )
        + "\n"
    )
    print(
        f"[optuna] {len(trials)} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed; best {best}; study in {path}"
    )
