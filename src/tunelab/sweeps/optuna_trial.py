"""The job side of an Optuna search (tunelab/sweeps/optuna_search.py): a trial's run reports the followed
validation metric to the study after every validation and stops, pruned, when the study's pruner says so."""

from __future__ import annotations

import lightning as L

from tunelab.errors import TunelabError


def built(spec):
    """Hydra builds the sweeper's nested ``_target_`` configs itself; build them when it did not."""
    from omegaconf import DictConfig

    if isinstance(spec, (dict, DictConfig)):
        from hydra.utils import instantiate

        return instantiate(spec)
    return spec


class ReportToOptuna(L.Callback):
    """In a trial's job: report the followed validation metric to the study; stop the run when pruned."""

    def __init__(self, storage: str, study: str, trial: int, monitor: str | None = None, pruner=None):
        self.storage, self.study_name, self.number, self.monitor = storage, study, trial, monitor
        self.pruner = pruner  # the sweeper's pruner (built by Hydra from its config)
        self._trial = None

    def _open_trial(self):
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=built(self.pruner))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
        return optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        import optuna

        from tunelab.callbacks import best_checkpoint_callback

        monitor = self.monitor or getattr(best_checkpoint_callback(trainer), "monitor", None)
        if monitor not in trainer.callback_metrics:
            raise TunelabError(
                f"Optuna follows '{monitor}', which this run does not log. "
                f"Logged: {', '.join(sorted(trainer.callback_metrics))}. Set hydra.sweeper.monitor."
            )
        value = float(trainer.callback_metrics[monitor])
        prune = False
        if trainer.is_global_zero:  # one report per validation, however many ranks
            self._trial = self._trial or self._open_trial()
            self._trial.report(value, step=trainer.global_step)
            prune = self._trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):  # every rank stops together (DDP/FSDP)
            raise optuna.TrialPruned(f"pruned at step {trainer.global_step}: {monitor}={value:.4f}")
