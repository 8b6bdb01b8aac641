"""The ``tunelab`` command: a thin dispatcher.

Only the standard library is imported here, so ``tunelab --help`` answers at once; each command
imports what it needs when it runs.
"""

from __future__ import annotations

import sys

COMMANDS = {
    "train": ("tunelab.commands.train", "fit a model, then test the best checkpoint (Hydra overrides; -m for sweeps)"),
    "predict": ("tunelab.commands.predict", "predict with a trained run: one JSON line per input text"),
    "eval": (
        "tunelab.commands.evaluate",
        "score a finished run's best checkpoint on a whole split (any number of processes)",
    ),
    "serve": ("tunelab.commands.serve", "serve a run's predictions over HTTP (POST /predict, batched)"),
    "export": ("tunelab.commands.export", "write a run as a plain Hugging Face folder (optionally push it to the Hub)"),
    "assets": ("tunelab.assets", "fetch and verify the offline weights and corpora into the cache"),
    "compare": ("tunelab.sweeps.compare", "table, seed statistics, plot and best overrides of a sweep's runs"),
    "estimate": ("tunelab.sweeps.estimate", "a sweep's wall time, peak memory and checkpoint disk, before it runs"),
    "reproduce": (
        "tunelab.commands.reproduce",
        "run a committed experiment's seeds and check its recorded number (PASS/FAIL)",
    ),
}

USAGE = """usage: tunelab COMMAND [ARGS]

Fine-tune Hugging Face backbones with PyTorch Lightning, configured by Hydra.

commands:
{commands}

examples:
  tunelab assets                                   # fetch MiniLM + the MR corpus (offline cache)
  tunelab train                                    # MiniLM on MR, 80/10/10 split, seed 42
  tunelab train optimizer.lr=3e-5 trainer.max_epochs=2
  tunelab train -m optimizer.lr=2e-5,5e-5 seed=1,2 # a sweep
  tunelab train --cfg job                          # print the composed config and exit
  tunelab predict outputs/runs/RUN --input texts.txt
  tunelab eval outputs/runs/RUN --split test trainer=ddp trainer.devices=2   # metrics on 2 processes
  tunelab serve outputs/runs/RUN --port 8000       # HTTP on 127.0.0.1: POST /predict, GET /health, /info
  tunelab export outputs/runs/RUN --out my-model
  tunelab train -m sweeps=lr_freeze hydra/launcher=joblib   # a committed sweep, 2 jobs at a time
  tunelab compare outputs/multirun/TIME            # its table, seed statistics, plot, best overrides
  tunelab estimate -m optimizer.lr=2e-5,5e-5 seed=1,2   # what that sweep will cost, before it runs
  tunelab reproduce experiment=mr_minilm          # all its seeds; PASS/FAIL against the recorded value

'tunelab COMMAND --help' explains each command.
"""


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from tunelab import __version__

        print(f"tunelab {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        from tunelab.errors import did_you_mean

        print(f"tunelab: unknown command '{command}'.{did_you_mean(command, COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2

    import importlib

    module = importlib.import_module(COMMANDS[command][0])
    from tunelab.errors import TunelabError

    try:
        return int(module.main(rest) or 0)
    except TunelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
