"""Hydra finds sweepers only under the ``hydra_plugins`` package; the logic is in tunelab.sweeps.optuna_search.

Hydra imports every module here at start-up, so this one stays light (no optuna import).
"""

from hydra.plugins.sweeper import Sweeper


class OptunaSweeper(Sweeper):
    def __init__(self, **settings):
        self.settings = settings

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments):
        from tunelab.sweeps.optuna_search import run_search

        return run_search(self, list(arguments), **self.settings)
