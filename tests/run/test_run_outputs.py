"""What a run with the user's data leaves behind: plain progress lines when stdout is not a terminal, a folded
config tree, a best checkpoint without optimizer state, and keep_last=false (issue 17, items 7 and 8)."""

from __future__ import annotations

import lightning  # noqa: F401  (before any capsys test: Lightning's log handler keeps the stderr it finds)
import torch

from helpers.runs import train_in_process


def _overrides(backbone, run_dir, *extra):  # conftest.quick without removing the progress bar
    return [
        f"model.backbone={backbone}",
        f"hydra.run.dir={run_dir}",
        "trainer.max_epochs=2",
        "data.max_samples={train: 64, validation: 32, test: 32}",
        "data.batch_size=8",
        "data.cache=false",
        "trainer.log_every_n_steps=2",
        *extra,
    ]


def test_redirected_run_logs_plain_lines_folds_config_and_keeps_best_without_optimizer(
    tiny_backbone, tmp_path, outputs, capsys
):
    run = tmp_path / "run"
    assert train_in_process(*_overrides(tiny_backbone, run, "callbacks.progress_bar.every_n_steps=3")) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("train: step ")]
    assert (
        steps[1].startswith("train: step 3/16  epoch 1/2  loss ") and "samples/s" in steps[1] and "ETA 0:" in steps[1]
    )
    assert [int(line.split()[2].split("/")[0]) for line in steps] == [1, 3, 6, 9, 12, 15]  # the first, then every 3rd
    assert sum(line.startswith("validation: epoch ") and "val/accuracy" in line for line in out.splitlines()) == 2
    # the config tree: untouched groups are one line each, the one the command changed (model) in full
    assert "optimizer: adamw" in out and "scheduler: linear" in out and "lr: " not in out
    assert "gradient_checkpointing" in out

    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert "optimizer_states" not in best and "tunelab" in best and best["state_dict"]
    assert "optimizer_states" in last  # resume needs it
    assert (run / "checkpoints" / "best.ckpt").stat().st_size < 0.6 * (run / "checkpoints" / "last.ckpt").stat().st_size

    from tunelab.commands.predict import predict_rows
    from tunelab.run.record import load_run

    _, module, datamodule, _ = load_run(str(run))  # predict/export load the weights-only best checkpoint
    assert predict_rows(module, datamodule, [{"text": "a fine film"}])[0]["label"] in ("positive", "negative")


def test_keep_last_false_leaves_only_the_best_checkpoint(tiny_backbone, tmp_path, outputs, capsys):
    run = tmp_path / "run"
    assert (
        train_in_process(
            *_overrides(tiny_backbone, run, "trainer.max_epochs=1", "keep_last=false", "print_config=full")
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "lr: " in out  # print_config=full: every group in full
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt"]


def test_terminal_gets_rich_bar():
    from lightning.pytorch.callbacks import RichProgressBar

    from tunelab.run.progress import PlainProgress, progress_bar

    class Tty:
        def isatty(self):
            return True

    class File:
        def isatty(self):
            return False

    assert isinstance(progress_bar(stream=Tty()), RichProgressBar)
    assert isinstance(progress_bar(stream=File()), PlainProgress)
