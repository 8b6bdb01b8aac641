"""``TuneDataModule``: raw splits in, tokenized, cached, dynamically padded batches out.

    loader() -> raw splits (data/raw_splits.py) -> learn_labels() -> [task.setup(tokenizer, labels)]
             -> task.preprocess (datasets.map, batched) -> cache on disk (data/tokenized_cache.py)
             -> DataLoaders (task.collate)

The data module never writes into the task: ``learn_labels()`` returns what the task learns from the
training split, and whoever wires the run hands it over (``task.setup``, tunelab/commands/parts.py)
before ``setup()`` tokenizes. The tokenized splits are cached under ``$TUNELAB_CACHE/tokenized/<key>``;
the key hashes the loader and its arguments (and local files' size and mtime), the column mapping, the
split recipe, the task's settings, the tokenizer and ``max_length``, so a second run of the same data
tokenizes nothing and any change re-tokenizes. Batches are padded to their longest row, never to
``max_length``; training batches are length-grouped (or token-budget), evaluation batches length-sorted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from tunelab.data import tokenized_cache
from tunelab.data.checks import check_unique_ids
from tunelab.data.raw_splits import SPLITS, raw_splits
from tunelab.data.samplers import ResumableLoader, SortedSampler, batches_trained_this_epoch, train_sampling
from tunelab.data.sources import describe as _describe
from tunelab.data.token_budget import checked_max_tokens
from tunelab.errors import TunelabError


class TuneDataModule(L.LightningDataModule):
    def __init__(
        self,
        loader: Callable,
        task=None,
        tokenizer="minilm",
        columns: dict | None = None,
        source_splits: dict | None = None,
        split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 42,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        group_by_length: bool = True,
        max_tokens: int | None = None,
        num_workers: int = 0,
        max_samples: dict | None = None,
        cache: bool = True,
        seed: int = 0,
        name: str | None = None,
        num_folds: int | None = None,
        fold: int = 0,
        trust_remote_code: bool = False,
    ):
        super().__init__()
        for key, value in (("batch_size", batch_size), ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                raise TunelabError(  # the one check of these two (config.validate leaves them here, for the Python API too)
                    f"data.{key}={value!r} {'is out of range' if number else 'is not a number'}: data.{key} must be "
                    f"a positive integer, e.g. data.{key}={32 if key == 'batch_size' else 128}."
                )
        ratios = tuple(float(r) for r in split_ratios)
        if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6 or ratios[0] == 0:
            raise TunelabError(
                f"data.split_ratios must be three non-negative numbers (train, validation, test) "
                f"summing to 1 with train > 0, got {list(split_ratios)}."
            )
        if num_folds is not None and not (isinstance(num_folds, int) and num_folds >= 2 and 0 <= fold < num_folds):
            raise TunelabError(
                f"data.num_folds must be an integer >= 2 and data.fold one of 0..num_folds-1, "
                f"got num_folds={num_folds!r}, fold={fold!r}."
            )
        self.num_folds, self.fold = num_folds, fold
        self.loader = loader
        self._resume_batches = 0  # training batches of this epoch already done (load_state_dict on resume)
        self.task = task
        self._tokenizer = tokenizer
        self.backbone = tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, "name_or_path", "the backbone")
        self.data_report: dict = {}
        self.trust_remote_code = trust_remote_code  # model.trust_remote_code: the tokenizer may ship code too
        # a list maps several source columns onto one list-valued column (multiple choice: the endings)
        self.columns = {
            canon: src if src is None or isinstance(src, (str, bool)) else [str(s) for s in src]
            for canon, src in dict(columns or {}).items()
        }
        self.source_splits = dict(source_splits or {})
        self.split_ratios = ratios
        self.split_seed = split_seed
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size * 2
        self.group_by_length = group_by_length
        self.max_tokens = checked_max_tokens(max_tokens)  # training batches within a token budget
        self.num_workers = num_workers
        self.max_samples = dict(max_samples or {})
        self.cache = cache
        self.seed = seed
        described = _describe(loader)
        self.name = (
            name
            or described["kwargs"].get("name")
            or (described["args"] or [None])[0]
            or described["loader"].rsplit(".", 1)[-1]
        )
        self.splits = None  # the tokenized DatasetDict, after setup()
        self.predict_split = None
        self.labels: dict | None = None  # what learn_labels() found
        self._raw = None  # the raw splits, between learn_labels() and tokenizing them
        self._key = None

    # ---- tokenizer
    @property
    def tokenizer(self):
        if isinstance(self._tokenizer, str):
            from tunelab.model.backbone import load_tokenizer

            self._tokenizer = load_tokenizer(self._tokenizer, trust_remote_code=self.trust_remote_code)
        return self._tokenizer

    # ---- cache key
    def cache_key(self) -> str:
        if self._key is None:
            tok = self.tokenizer
            backend = getattr(tok, "backend_tokenizer", None)
            self._key = tokenized_cache.key(
                {
                    "source": _describe(self.loader),
                    "columns": self.columns,
                    "source_splits": self.source_splits,
                    "split": [self.split_ratios, self.split_seed, self.num_folds, self.fold],
                    "max_samples": self.max_samples,
                    "task": self.task.fingerprint(),
                    "tokenizer": [type(tok).__name__, len(tok), backend.to_str() if backend else tok.name_or_path],
                    "max_length": self.max_length,
                }
            )
        return self._key

    @property
    def cache_path(self) -> Path:
        return tokenized_cache.path_of(self.cache_key())

    # ---- labels: learnt here, handed to the task by whoever wires the run
    def learn_labels(self) -> dict:
        """What the task learns from the training split (its label set, ...), in its ``state_dict`` form,
        for ``task.setup(tokenizer, labels)``. Read from the cache entry when there is one, else learnt from
        the raw training split (loaded once, and kept to tokenize). The task is not changed."""
        if self.labels is None:
            if self.cache and tokenized_cache.complete(self.cache_path):
                self.labels = tokenized_cache.read_labels(self.cache_path)
            else:
                self.labels = self.task.labels_from(self._raw_splits_once()["train"])
        return self.labels

    def _raw_splits(self):
        return raw_splits(self)

    def _raw_splits_once(self):
        if self._raw is None:
            raw = self._raw_splits()
            if len(raw["train"]) == 0:  # before learning labels, which would report "a single label []"
                raise TunelabError(
                    f"The train split of '{self.name}' is empty. Check data.split_ratios, "
                    "data.max_samples and the source files."
                )
            self._raw = raw
        return self._raw

    def _check_task_set_up(self) -> None:
        if getattr(self.task, "tokenizer", None) is None:
            raise TunelabError(
                f"The task of data '{self.name}' is not set up: the data module tokenizes with the task's labels. "
                "Call task.setup(datamodule.tokenizer, datamodule.learn_labels()) first "
                "(tunelab.commands.parts.build does)."
            )

    def _uses_cache(self) -> bool:
        """The cache holds features tokenized with the labels learnt from this data; a task with other
        labels (restored from a checkpoint, evaluated on other data) tokenizes without it."""
        if not self.cache:
            return False
        state = json.loads(json.dumps(self.task.state_dict(), default=str))
        return all(state.get(k) == v for k, v in json.loads(json.dumps(self.learn_labels(), default=str)).items())

    def _tokenize(self, ds, split: str):
        if len(ds) == 0:
            raise TunelabError(
                f"The {split} split of '{self.name}' is empty. Check data.split_ratios, "
                "data.max_samples and the source files."
            )
        check_unique_ids(ds, split, self.name)
        from datasets.fingerprint import generate_random_fingerprint

        try:
            return ds.map(
                self.task.preprocess,
                batched=True,
                remove_columns=[c for c in ds.column_names if c != "idx"],
                fn_kwargs={"tokenizer": self.tokenizer, "max_length": self.max_length},
                desc=f"tokenizing {split}",
                load_from_cache_file=False,
                # predict rows live in memory, never cached: hashing the tokenizer for a fingerprint cost ~1 s a call
                new_fingerprint=generate_random_fingerprint() if split == "predict" else None,
            )
        except TunelabError as err:
            raise TunelabError(f"In the {split} split of '{self.name}': {err}") from None

    def _build(self):
        """(tokenized splits, data report) of the raw splits, with the task as set up."""
        import datasets

        from tunelab.data import report

        datasets.disable_progress_bars()  # small corpora tokenize in seconds; the bars were noise
        raw, self._raw = self._raw_splits_once(), None  # tokenized once: the raw rows are not kept
        data_report = report.build(raw, self.task, self.tokenizer, self.max_length, self.split_seed)
        self.data_report = data_report
        self._print_report()
        return datasets.DatasetDict({split: self._tokenize(raw[split], split) for split in SPLITS}), data_report

    def _print_report(self) -> None:
        """Truncation and tokenizer fit (data/report.py), once per run, by rank 0."""
        from tunelab.data import report
        from tunelab.run.distributed import global_rank

        if global_rank() == 0 and self.data_report:
            print("\n".join(report.lines(self.data_report, self.backbone)))

    def prepare_data(self):
        """Tokenize once into the cache. Lightning calls this on one process per node; a file lock per key
        lets one of several jobs building the same key build it while the others wait, then read it."""
        self._check_task_set_up()
        if not self._uses_cache() or tokenized_cache.complete(self.cache_path):
            return
        splits = tokenized_cache.build_once(self.cache_path, self._build, self.learn_labels())
        if splits is not None:
            self.splits = splits

    def setup(self, stage: str | None = None):
        if self.splits is not None:
            return
        self._check_task_set_up()
        if not self._uses_cache():
            self.splits, self.data_report = self._build()
            return
        self.prepare_data()
        if self.splits is None:  # cache hit
            self.splits, self.data_report = tokenized_cache.read(self.cache_path)
            self.tokenized_from_cache = True
            self._print_report()

    # ---- loaders
    def _loader(self, ds, sampler, batch_size, loader=DataLoader, **extra):
        return loader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.task.collate(self.tokenizer),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **extra,
        )

    def train_dataloader(self):
        ds = self.splits["train"]
        sampling = train_sampling(ds, self.batch_size, self.seed, self.group_by_length, self.max_tokens, self.trainer)
        skip, self._resume_batches = self._resume_batches, 0
        return self._loader(ds, loader=ResumableLoader, skip_batches=skip, **sampling)

    # a mid-epoch checkpoint resumes at the batch where it was saved (tunelab/data/samplers.py)
    def state_dict(self) -> dict:
        return {"train_batches_done": batches_trained_this_epoch(self.trainer)}

    def load_state_dict(self, state: dict) -> None:
        self._resume_batches = int(state.get("train_batches_done", 0))

    def _eval_loader(self, ds):
        return self._loader(ds, SortedSampler(ds["length"]), self.eval_batch_size)

    def val_dataloader(self):
        return self._eval_loader(self.splits["validation"])

    def test_dataloader(self):
        return self._eval_loader(self.splits["test"])

    def predict_dataloader(self):
        return self._eval_loader(self.predict_split if self.predict_split is not None else self.splits["test"])

    def set_predict_inputs(self, rows: list[dict]) -> None:
        """Rows of canonical columns (``{"text": ...}``) to predict; their order is kept."""
        import datasets

        ds = datasets.Dataset.from_list([{**row, "idx": i} for i, row in enumerate(rows)])
        self.predict_split = self._tokenize(ds, "predict")
