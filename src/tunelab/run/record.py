"""The run directory: what a run writes, and how predict/export load it back.

<run>/config.yaml        the resolved config
<run>/.hydra/            Hydra's own record (config, overrides)
<run>/run.json           status (running / completed / failed / interrupted), start/end times, exit
                         status, command and overrides, seed, git commit/dirty (+ git.diff),
                         package versions, torch/CUDA/hardware, data fingerprint, error
<run>/metrics.json       final metrics; written last, only when the run succeeded
<run>/checkpoints/       best.ckpt (followed metric), last.ckpt
<run>/csv/metrics.csv    per-step logs (and tensorboard/, wandb/ when enabled)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tunelab.errors import TunelabError


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)  # atomic: readers never see half a file


class RunRecord:
    """Writes run.json at start and end; metrics.json only on success. Rank 0 only (DDP/FSDP).

    A run calls ``start`` -> ``built`` (its parts) -> ``attach`` (its trainer) -> ``fitted`` -> ``finish``
    -> ``print_result``; leaving the ``with`` block on an error marks run.json failed or interrupted."""

    def __init__(self, run_dir: Path):
        from tunelab.run.distributed import global_rank

        self.run_dir = Path(run_dir)
        self.info: dict = {}
        self.writes = global_rank() == 0
        self.fast_dev_run = False
        self.trainer = None  # the run's trainer, once attached (what SIGTERM saved is in its callbacks)
        self.parameters: dict = {}
        self.summary: dict | None = None  # metrics.json's content, once finished

    def start(self, cfg, overrides: list[str] | None = None) -> None:
        from omegaconf import OmegaConf

        from tunelab.run import metadata
        from tunelab.run.secrets import scrub, scrub_files

        # one batch per split and no checkpoint: recorded as such, so latest/predict/export/compare pass it by
        self.fast_dev_run = bool(OmegaConf.select(cfg, "trainer.fast_dev_run", default=False))
        if not self.writes:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "metrics.json").unlink(missing_ok=True)  # a resumed run earns it again
        resolved = scrub(OmegaConf.to_container(cfg, resolve=True))
        (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
        scrub_files(self.run_dir / ".hydra")  # Hydra wrote the raw overrides there before we ran
        self.info = scrub(
            {
                "status": "running",
                "started": _now(),
                "command": sys.argv,
                "overrides": list(overrides or []),
                "cwd": os.getcwd(),
                "pid": os.getpid(),
                "seed": cfg.get("seed"),
                **metadata.collect(self.run_dir),
            }
        )
        _write_json(self.run_dir / "run.json", self.info)

    def update(self, **fields) -> None:
        """Add facts learnt during the run (e.g. the data fingerprint) to run.json."""
        from tunelab.run.secrets import scrub

        self.info.update(scrub(fields))
        if self.writes:
            _write_json(self.run_dir / "run.json", self.info)

    def built(self, parts) -> None:
        """The run's parts exist: their data fingerprint goes into run.json, the parameter report is printed,
        and the disk must hold the checkpoints of that many parameters."""
        from tunelab.data.fingerprint import data_fingerprint
        from tunelab.run.preflight import check_free_space
        from tunelab.tuning.report import format_report

        self.update(data_fingerprint=data_fingerprint(parts.datamodule.splits))
        self.parameters = parts.module.num_parameters()
        print(format_report(self.parameters))
        check_free_space(self.run_dir, self.parameters["total"])

    def attach(self, trainer, cfg) -> None:
        """The run's trainer: its loggers record the config and this run's metadata (secrets masked)."""
        from tunelab.run.loggers import log_config

        self.trainer = trainer
        log_config(trainer.loggers, cfg, run_info=self.info)

    def fitted(self, trainer) -> None:
        """After ``trainer.fit``: note the checkpoint it resumed from; an interrupted fit ends the run here."""
        if trainer.ckpt_path:  # ckpt_path=last, or Lightning's own pick (an HPC checkpoint on SLURM)
            self.update(resumed_from=str(trainer.ckpt_path))
        if trainer.interrupted:
            raise TunelabError("Training was interrupted; no test was run and no metrics.json written.")

    def finish(self, trainer, parts, cfg, fit_seconds: float, metrics: dict) -> None:
        """Write metrics.json (the summary of a run that succeeded) and mark run.json completed."""
        from tunelab.run.secrets import scrub

        self.summary = summary = _summary(trainer, parts, cfg, fit_seconds, metrics, self.run_dir, self.parameters)
        if not self.writes:
            return
        if self.fast_dev_run:
            summary = {**summary, "fast_dev_run": True}
            self.info["fast_dev_run"] = True
        _write_json(self.run_dir / "metrics.json", scrub(summary))
        self.info.update(status="completed", ended=_now(), exit_status=0)
        _write_json(self.run_dir / "run.json", self.info)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and self.writes:
            from tunelab.run.secrets import scrub_text

            preempted = type(exc).__name__ in ("PreemptedError", "SIGTERMException")
            self.info.update(
                status="interrupted" if preempted else "failed",
                ended=_now(),
                exit_status=1,  # what `tunelab train` exits with (Hydra exits 1 on any error)
                error=scrub_text(f"{type(exc).__name__}: {exc}"),
            )
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "metrics.json").unlink(missing_ok=True)
                _write_json(self.run_dir / "run.json", self.info)
            except OSError:  # an unwritable or full disk: the original error is the one to show
                pass
        return False

    def print_result(self) -> None:
        """The final metrics, epochs, steps and fit time of a finished run (rank 0)."""
        summary = self.summary
        if not (self.writes and summary):
            return
        width = max((len(k) for k in summary["metrics"]), default=0)
        print("\nfinal metrics")
        for key, value in sorted(summary["metrics"].items()):
            print(f"  {key:<{width}}  {value:.4f}")
        print(f"epochs {summary['epochs']}  steps {summary['global_steps']}  fit {summary['fit_seconds']:.0f}s")
        print(f"run directory: {self.run_dir}")


def _summary(trainer, parts, cfg, fit_seconds: float, metrics: dict, run_dir: Path, parameters: dict) -> dict:
    """metrics.json: the final metrics, the followed metric's best value and checkpoint, what it cost."""
    from tunelab.callbacks import best_checkpoint_callback
    from tunelab.run.memory import peak_memory_mb

    callback = best_checkpoint_callback(trainer)
    best = Path(callback.best_model_path) if callback and callback.best_model_path else None
    datamodule = parts.datamodule
    return {
        "metrics": metrics,
        "monitor": {
            "metric": parts.task.metric,
            "mode": parts.task.metric_mode,
            "best": float(callback.best_model_score) if callback and callback.best_model_score is not None else None,
        },
        "best_checkpoint": _relative(best, run_dir),
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "fit_seconds": round(fit_seconds, 2),
        "parameters": parameters,
        "checkpoint_mb": round(best.stat().st_size / 2**20, 3) if best and best.exists() else None,
        "peak_memory_mb": peak_memory_mb(),
        "data": {
            "name": datamodule.name,
            "sizes": {split: len(rows) for split, rows in datamodule.splits.items()},
            "tokenized_cache": datamodule.cache_key() if datamodule.cache else None,
        },
        "seed": cfg.seed,
    }


def _relative(path: Path | None, run_dir: Path) -> str:
    """A checkpoint inside the run directory as a path relative to it (the folder can move), else as given."""
    if path is None:
        return ""
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def resolve_run_dir(run: str) -> Path:
    """A run directory; ``latest`` is the newest finished run under outputs/runs."""
    if run == "latest":
        root = Path(os.environ.get("TUNELAB_OUTPUTS", "outputs")) / "runs"
        done = sorted(
            (p for p in root.glob("*/metrics.json") if not is_fast_dev_run(p.parent)), key=lambda p: p.stat().st_mtime
        )
        if not done:
            raise TunelabError(
                f"No finished run under {root} (debug=fast_dev_run runs do not count). Train one with `tunelab train`."
            )
        return done[-1].parent
    path = Path(run).expanduser()
    if not path.is_dir():
        raise TunelabError(f"Run directory '{run}' does not exist.")
    if not (path / "metrics.json").exists():
        status = (
            json.loads((path / "run.json").read_text()).get("status") if (path / "run.json").exists() else "unknown"
        )
        raise TunelabError(
            f"'{run}' is not a finished run (no metrics.json; status: {status}). "
            "Predict and export need a run that completed."
        )
    if is_fast_dev_run(path):
        raise TunelabError(
            f"'{run}' is a debug=fast_dev_run run (one batch per split, no checkpoint): a check that the "
            "pipeline runs, not a model. Predict and export need a run trained without debug=fast_dev_run."
        )
    return path


def is_fast_dev_run(run_dir: Path) -> bool:
    """A run that finished under debug=fast_dev_run (its metrics.json says so)."""
    try:
        return bool(json.loads((Path(run_dir) / "metrics.json").read_text()).get("fast_dev_run"))
    except (OSError, ValueError):
        return False


def load_run(run: str, cfg=None):
    """(config, module with the best weights, data module) of a finished run, ready to predict.
    ``cfg``: the run's config with changes (``tunelab eval`` overrides); default ``<run>/config.yaml``."""
    import torch
    from omegaconf import OmegaConf

    from tunelab.config import instantiate

    run_dir = resolve_run_dir(run)
    cfg = OmegaConf.load(run_dir / "config.yaml") if cfg is None else cfg
    summary = json.loads((run_dir / "metrics.json").read_text())
    ckpt_path = run_dir / summary["best_checkpoint"] if summary.get("best_checkpoint") else None
    if ckpt_path is None or not ckpt_path.exists():
        raise TunelabError(f"The run {run_dir} has no best checkpoint ({ckpt_path}); it cannot be loaded.")
    try:
        if ckpt_path.is_dir():  # a sharded FSDP checkpoint (trainer=fsdp): consolidate it in memory
            from tunelab.model.sharding import consolidated_checkpoint

            checkpoint = consolidated_checkpoint(ckpt_path)
        else:
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except TunelabError:  # already says what and where (a refused sharded checkpoint)
        raise
    except Exception as err:
        raise TunelabError(f"Cannot read the checkpoint {ckpt_path}: {type(err).__name__}: {str(err)[:300]}") from err
    # wired as in tunelab.commands.parts.build, with the labels the checkpoint was trained with
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task, tokenizer=cfg.model.backbone)
    task.setup(datamodule.tokenizer, checkpoint["tunelab"]["task_state"])
    # a PEFT/frozen run's checkpoint holds only what trained: the rest comes from the pretrained backbone
    partial = checkpoint["tunelab"].get("partial", False)
    module = instantiate(cfg.model, "model", task=task, pretrained=partial)
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    return cfg, module, datamodule, run_dir
