"""``TuneDataModule``: raw splits in, tokenized, cached, dynamically padded batches out.

    loader()  ->  rename columns  ->  create missing splits  ->  task.fit_labels(train)
              ->  task.preprocess (datasets.map, batched)  ->  cache on disk  ->  DataLoaders

The tokenized splits are cached under ``$TUNELAB_CACHE/tokenized/<key>``; the key hashes the
loader and its arguments (and local files' size and mtime), the column mapping, the split
recipe, the task's settings, the tokenizer and ``max_length``, so a second run of the same data
tokenizes nothing and any change re-tokenizes. Batches are padded to their longest row, never
to ``max_length``; training batches are length-grouped, evaluation batches length-sorted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from tunelab.data.checks import check_labels, check_unique_ids
from tunelab.data.resumable import ResumableLoader, batches_trained_this_epoch
from tunelab.data.samplers import LengthGroupedSampler, SortedSampler
from tunelab.data.sources import describe as _describe
from tunelab.data.splits import SPLITS, carve_missing, kfold
from tunelab.errors import TunelabError

CACHE_FORMAT = 2  # bump when the cached layout changes


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
                raise TunelabError(f"data.{key} must be a positive integer, got {value!r}.")
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
            from datasets.fingerprint import Hasher

            tok = self.tokenizer
            backend = getattr(tok, "backend_tokenizer", None)
            recipe = {
                "format": CACHE_FORMAT,
                "source": _describe(self.loader),
                "columns": self.columns,
                "source_splits": self.source_splits,
                "split": [self.split_ratios, self.split_seed, self.num_folds, self.fold],
                "max_samples": self.max_samples,
                "task": self.task.fingerprint(),
                "tokenizer": [type(tok).__name__, len(tok), backend.to_str() if backend else tok.name_or_path],
                "max_length": self.max_length,
            }
            self._key = Hasher.hash(json.dumps(recipe, sort_keys=True, default=str))
        return self._key

    @property
    def cache_path(self) -> Path:
        from tunelab.assets import cache_dir

        return cache_dir() / "tokenized" / self.cache_key()

    # ---- building the splits
    def _raw_splits(self):
        import datasets

        try:
            raw = self.loader()
        except TypeError as err:  # a config key the loader function does not take
            raise TunelabError(f"data.loader of '{self.name}': {err}. Check the keys under data.loader.") from err
        if isinstance(raw, dict) and not isinstance(raw, datasets.DatasetDict):
            raw = datasets.DatasetDict(raw)
        if isinstance(raw, datasets.Dataset):
            raw = datasets.DatasetDict({"train": raw})
        if self.source_splits:
            for ours, theirs in self.source_splits.items():
                if ours not in SPLITS or theirs not in raw:
                    raise TunelabError(
                        f"data.source_splits maps '{ours}' to '{theirs}', but tunelab's splits are "
                        f"{list(SPLITS)} and the source has {list(raw)}."
                    )
            raw = datasets.DatasetDict({ours: raw[theirs] for ours, theirs in self.source_splits.items()})
        if "train" not in raw:
            raise TunelabError(f"Data source '{self.name}' has no 'train' split (it has {list(raw)}).")
        raw = datasets.DatasetDict({k: v for k, v in raw.items() if k in SPLITS})
        raw = self._rename_columns(raw)
        check_labels(raw, self.task, self.resolved_columns.get("label"), self.name)
        return self._create_missing_splits(raw)

    def _rename_columns(self, raw):
        from tunelab.data.columns import missing_column_error, resolve

        wanted = resolve(self.columns, self.task, raw["train"].column_names)  # the task's defaults filled in
        self.resolved_columns = wanted

        def sources(src) -> list[str]:
            return src if isinstance(src, list) else [src]

        out = {}
        for split, ds in raw.items():
            optional = set(self.task.optional_columns)
            missing = [
                (canon, s)
                for canon, src in wanted.items()
                for s in sources(src)
                if s not in ds.column_names and not (split != "train" and (canon == "label" or canon in optional))
            ]
            if missing:
                raise missing_column_error(split, self.name, self.task, *missing[0], wanted, ds)
            present = {src: canon for canon, src in wanted.items() if isinstance(src, str) and src in ds.column_names}
            gathered = {canon: src for canon, src in wanted.items() if isinstance(src, list)}
            if gathered:  # several source columns -> one list column per row
                ds = ds.map(
                    lambda b, gathered=gathered: {
                        canon: [list(v) for v in zip(*(b[s] for s in src))] for canon, src in gathered.items()
                    },
                    batched=True,
                )
            ds = ds.select_columns(list(present) + [c for c in gathered if c not in present])
            ds = ds.rename_columns({s: c for s, c in present.items() if s != c})
            out[split] = ds
        import datasets

        return datasets.DatasetDict(out)

    def _create_missing_splits(self, raw):
        import datasets

        if self.num_folds:
            raw = kfold(raw["train"], self.num_folds, self.fold, self.split_ratios, self.split_seed)
        raw = datasets.DatasetDict(carve_missing(raw, self.split_ratios, self.split_seed))
        for split, n in self.max_samples.items():
            if n is not None and split in raw and len(raw[split]) > n:  # a seeded random subset, not the head
                keep = np.sort(np.random.default_rng(self.split_seed).permutation(len(raw[split]))[: int(n)])
                raw[split] = raw[split].select(keep)
        return datasets.DatasetDict({s: raw[s].add_column("idx", list(range(len(raw[s])))) for s in SPLITS})

    def _tokenize(self, ds, split: str):
        if len(ds) == 0:
            raise TunelabError(
                f"The {split} split of '{self.name}' is empty. Check data.split_ratios, "
                "data.max_samples and the source files."
            )
        check_unique_ids(ds, split, self.name)
        try:
            return ds.map(
                self.task.preprocess,
                batched=True,
                remove_columns=[c for c in ds.column_names if c != "idx"],
                fn_kwargs={"tokenizer": self.tokenizer, "max_length": self.max_length},
                desc=f"tokenizing {split}",
                load_from_cache_file=False,
            )
        except TunelabError as err:
            raise TunelabError(f"In the {split} split of '{self.name}': {err}") from None

    def _build(self):
        import datasets

        datasets.disable_progress_bars()  # small corpora tokenize in seconds; the bars were noise

        raw = self._raw_splits()
        if len(raw["train"]) == 0:  # before fit_labels, which would report "a single label []"
            raise TunelabError(
                f"The train split of '{self.name}' is empty. Check data.split_ratios, "
                "data.max_samples and the source files."
            )
        self.task.fit_labels(raw["train"])
        from tunelab.data import report

        self.data_report = report.build(raw, self.task, self.tokenizer, self.max_length, self.split_seed)
        self._print_report()
        return datasets.DatasetDict({split: self._tokenize(raw[split], split) for split in SPLITS})

    def _print_report(self) -> None:
        """Truncation and tokenizer fit (data/report.py), once per run, by rank 0."""
        from tunelab.data import report
        from tunelab.run.distributed import global_rank

        if global_rank() == 0 and self.data_report:
            print("\n".join(report.lines(self.data_report, self.backbone)))

    def _cached(self) -> bool:
        return (self.cache_path / "task_state.json").exists()

    def prepare_data(self):
        """Tokenize once into the cache. Lightning calls this on one process per node, but two jobs of a
        sweep (or two nodes sharing a disk) can build the same key at once: a file lock per key lets one
        build while the others wait, then read what it wrote."""
        if not self.cache or self._cached():
            return
        from filelock import FileLock

        from tunelab.errors import check_writable

        check_writable(
            self.cache_path.parent,
            "the tokenization cache",
            "Set TUNELAB_CACHE to a writable folder, or data.cache=false to tokenize without caching.",
        )
        with FileLock(str(self.cache_path) + ".lock"):
            if self._cached():  # another process built it while this one waited
                return
            splits = self._build()
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.cache_path.parent))
            try:
                splits.save_to_disk(str(tmp / "splits"))
                (tmp / "data_report.json").write_text(json.dumps(self.data_report))
                (tmp / "task_state.json").write_text(json.dumps(self.task.state_dict()))
                # only a leftover without task_state.json can be here (a complete entry returned above)
                shutil.rmtree(self.cache_path, ignore_errors=True)
                tmp.rename(self.cache_path)  # atomic: a half-written cache is never picked up
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self.splits = splits

    def setup(self, stage: str | None = None):
        if self.splits is not None:
            return
        if self.cache:
            import datasets

            self.prepare_data()
            if self.splits is None:  # cache hit
                datasets.disable_progress_bars()
                self.splits = datasets.load_from_disk(str(self.cache_path / "splits"))
                self.task.load_state_dict(json.loads((self.cache_path / "task_state.json").read_text()))
                self.tokenized_from_cache = True
                if (self.cache_path / "data_report.json").exists():
                    self.data_report = json.loads((self.cache_path / "data_report.json").read_text())
                    self._print_report()
        else:
            self.splits = self._build()

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
        if self.group_by_length:
            sampler = LengthGroupedSampler(ds["length"], self.batch_size, seed=self.seed)
        else:
            import torch

            sampler = torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(self.seed))
        skip, self._resume_batches = getattr(self, "_resume_batches", 0), 0
        return self._loader(ds, sampler, self.batch_size, loader=ResumableLoader, skip_batches=skip)

    # a mid-epoch checkpoint resumes at the batch where it was saved (tunelab/data/resumable.py)
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
