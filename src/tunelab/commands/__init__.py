"""The commands ``tunelab`` dispatches to (cli.py): train, predict, export, eval, reproduce.

``tunelab compare``, ``estimate`` and ``assets`` live with what they work on (tunelab/sweeps/,
tunelab/assets/). Each module is imported only when its command runs (``tunelab --help`` stays fast).
"""
