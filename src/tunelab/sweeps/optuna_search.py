"""Optuna search with pruning, as a Hydra sweeper: ``tunelab train -m sweeps=optuna_lr``.

Why not hydra-optuna-sweeper: it pins optuna<3 and its trials never see the ``optuna.Trial``,
so Lightning cannot report to it and nothing is ever pruned (STACK.md). Here:

  * the sweeper (``run_search``) keeps the study in an SQLite file in the sweep folder, asks
    ``n_jobs`` trials at a time and launches them as ordinary sweep jobs through whatever launcher
    is configured (basic, joblib, submitit, SLURM), so a trial may run in another process or machine;
  * each job gets a ``ReportToOptuna`` callback (added by overrides) that opens the same study,
    reports the followed validation metric after every validation, and raises
    ``optuna.TrialPruned`` when the pruner says so; the run ends with status "pruned";
  * the sweeper tells the study each trial's outcome: the best validation value of completed
    trials (from their metrics.json), PRUNED or FAIL; and writes ``<sweep>/optuna.json``.

Rerunning the same sweep with ``resume=true`` loads the study and runs only the missing trials.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L

from tunelab.errors import TunelabError

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


def _outcome(result) -> tuple[str, float | None, str]:
    """(state, value, note) of a finished job: the best followed validation value when it completed."""
    from hydra.core.utils import JobStatus

    if result.status == JobStatus.COMPLETED:
        summary = Path(result.hydra_cfg.hydra.runtime.output_dir) / "metrics.json"
        monitor = json.loads(summary.read_text())["monitor"] if summary.exists() else {}
        value = monitor.get("best")
        if value is None:  # no checkpoint callback: the last validation value
            value = result.return_value.get(monitor.get("metric", ""))
        return "complete", value, ""
    error = result._return_value
    if type(error).__name__ == "TrialPruned":
        return "pruned", None, str(error)
    return "fail", None, f"{type(error).__name__}: {str(error)[:300]}"


def _built(spec):
    """Hydra builds the sweeper's nested ``_target_`` configs itself; build them when it did not."""
    from omegaconf import DictConfig

    if isinstance(spec, (dict, DictConfig)):
        from hydra.utils import instantiate

        return instantiate(spec)
    return spec


def _flow(spec) -> str:
    """A flat config as a Hydra override value: {_target_: optuna.pruners.MedianPruner, n_startup_trials: 2}."""
    if spec is None:
        return "null"
    from omegaconf import OmegaConf

    items = OmegaConf.to_container(spec, resolve=True).items()
    shown = {None: "null", True: "true", False: "false"}
    return "{" + ", ".join(f"{k}: {shown.get(v, v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v}"
                           for k, v in items) + "}"


def run_search(sweeper, arguments: list[str], n_trials: int, n_jobs: int, direction: str, params: dict,
               monitor: str | None = None, study_name: str = "tunelab", storage: str | None = None,
               sampler=None, pruner=None):
    import optuna

    if not params:
        raise TunelabError("The Optuna sweeper has no search space: set hydra.sweeper.params "
                           "(see sweeps/optuna_lr.yaml), e.g. optimizer.lr: {type: float, low: 1e-5, high: 3e-4, log: true}")
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    from omegaconf import OmegaConf

    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")  # as Hydra's sweeper does: resume finds it
    storage = storage or f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, load_if_exists=True,
                                sampler=_built(sampler), pruner=_built(pruner))
    _requeue_interrupted(study)
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
            report = [f"{CALLBACK}._target_=tunelab.sweeps.optuna_search.ReportToOptuna",
                      f"{CALLBACK}.storage='{storage}'", f"{CALLBACK}.study={study_name}",
                      f"{CALLBACK}.trial={trial.number}", f"{CALLBACK}.monitor={monitor or 'null'}",
                      f"{CALLBACK}.pruner={pruner_override}"]
            batch.append([*arguments, *chosen, *report])
        sweeper.validate_batch_is_legal(batch)
        returns = sweeper.launcher.launch(batch, initial_job_idx=trials[0].number)
        for trial, result in zip(trials, returns):
            state, value, note = _outcome(result)
            study.tell(trial, value if state == "complete" else None,
                       state={"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
                              "fail": optuna.trial.TrialState.FAIL}[state])
            shown = ", ".join(f"{k}={v}" for k, v in trial.params.items())
            print(f"[optuna] trial {trial.number} ({shown}): {state}"
                  f"{f' {value:.4f}' if value is not None else ''}{f' - {note}' if note else ''}")
        results.append(returns)
        finished += len(trials)
    _write_summary(study, sweep_dir / "optuna.json")
    return results


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

    trials = [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
               "last_step": max(t.intermediate_values, default=None)} for t in study.trials]
    counts = {s.name.lower(): sum(t.state == s for t in study.trials) for s in TrialState}
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = {"number": study.best_trial.number, "value": study.best_value, "params": study.best_params} if complete else None
    path.write_text(json.dumps({"direction": study.direction.name.lower(), "counts": counts, "best": best,
                                "trials": trials}, indent=2) + "\n")
    print(f"[optuna] {len(trials)} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
          f"{counts['fail']} failed; best {best}; study in {path}")


class ReportToOptuna(L.Callback):
    """In a trial's job: report the followed validation metric to the study; stop the run when pruned."""

    def __init__(self, storage: str, study: str, trial: int, monitor: str | None = None, pruner=None):
        self.storage, self.study_name, self.number, self.monitor = storage, study, trial, monitor
        self.pruner = pruner  # the sweeper's pruner (built by Hydra from its config)
        self._trial = None

    def _open_trial(self):
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=_built(self.pruner))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
        return optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        import optuna

        from tunelab.callbacks import best_checkpoint_callback

        monitor = self.monitor or getattr(best_checkpoint_callback(trainer), "monitor", None)
        if monitor not in trainer.callback_metrics:
            raise TunelabError(f"Optuna follows '{monitor}', which this run does not log. "
                               f"Logged: {', '.join(sorted(trainer.callback_metrics))}. Set hydra.sweeper.monitor.")
        value = float(trainer.callback_metrics[monitor])
        prune = False
        if trainer.is_global_zero:  # one report per validation, however many ranks
            self._trial = self._trial or self._open_trial()
            self._trial.report(value, step=trainer.global_step)
            prune = self._trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):  # every rank stops together (DDP/FSDP)
            raise optuna.TrialPruned(f"pruned at step {trainer.global_step}: {monitor}={value:.4f}")
