"""Token-budget batches (data.max_tokens): within the budget, every row once, same count on every rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
import torch

from tunelab.data import TuneDataModule
from tunelab.data.sources import builtin
from tunelab.data.token_budget import TokenBudgetBatchSampler
from tunelab.errors import TunelabError
from tunelab.tasks import SequenceClassification


def long_tailed(n=2000, seed=0):
    """Lengths like a real corpus: most rows short, a tail of long ones."""
    return np.clip(np.random.default_rng(seed).lognormal(3.3, 0.5, size=n).astype(int), 3, 256)


def padded(lengths, batch) -> int:
    return len(batch) * int(lengths[batch].max())


@pytest.fixture(scope="module")
def mr_data(tiny_backbone, tmp_path_factory):
    """MR tokenized with MiniLM's tokenizer (the tiny backbone's); the cache is this module's own."""
    from tunelab import assets

    mp, real_cache, cache = pytest.MonkeyPatch(), assets.cache_dir(), tmp_path_factory.mktemp("cache")
    for sub in ("models", "data"):
        (cache / sub).symlink_to(real_cache / sub)
    mp.setattr("tunelab.assets.cache_dir", lambda: cache)

    def build(**kwargs):
        dm = TuneDataModule(
            loader=partial(builtin, "mr"), task=SequenceClassification(), tokenizer=tiny_backbone, **kwargs
        )
        dm.task.setup(dm.tokenizer, dm.learn_labels())
        dm.setup()
        return dm

    yield build
    mp.undo()


@pytest.mark.parametrize("max_tokens", [300, 1024, 4096])
def test_no_batch_over_budget_and_every_row_once_per_epoch(max_tokens):
    lengths = long_tailed()
    sampler = TokenBudgetBatchSampler(lengths, max_tokens, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)  # len() is the real number of batches, every epoch
        assert max(padded(lengths, b) for b in batches) <= max_tokens
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert int(lengths[batches[0]].max()) == int(lengths.max())  # the longest row's batch first
    # padding stays low: grouped lengths, not the 40%+ of a random order
    share = 1 - lengths.sum() / sum(padded(lengths, b) for b in batches)
    assert share < 0.1, share


def test_on_mr_lengths_the_budget_holds_and_batches_average_near_32(mr_data):
    lengths = np.asarray(mr_data().splits["train"]["length"])
    sampler = TokenBudgetBatchSampler(lengths, 900, seed=1)
    batches = list(sampler)
    assert max(padded(lengths, b) for b in batches) <= 900
    assert sorted(i for b in batches for i in b) == list(range(3200))
    assert 28 <= 3200 / len(batches) <= 36


def test_order_is_a_function_of_seed_and_epoch():
    lengths = long_tailed()
    first = TokenBudgetBatchSampler(lengths, 1024, seed=1)
    epoch0 = list(first)
    first.set_epoch(1)
    epoch1 = list(first)
    assert epoch0 != epoch1 and {tuple(b) for b in epoch0} != {
        tuple(b) for b in epoch1
    }  # new batches, not only reordered
    fresh = TokenBudgetBatchSampler(lengths, 1024, seed=1)
    fresh.set_epoch(1)
    assert list(fresh) == epoch1  # a resumed run rebuilds the epoch
    assert list(TokenBudgetBatchSampler(lengths, 1024, seed=2)) != epoch0


def test_the_batch_count_is_the_same_every_epoch_even_when_packing_differs(monkeypatch):
    """Lightning reads len() once; an epoch that packs into fewer batches splits some, one that would need
    more is packed from all rows sorted (the fewest batches there are)."""
    monkeypatch.setattr("tunelab.data.token_budget.EPOCHS_SIZED", 1)  # sized on epoch 0 only: both paths occur
    lengths = long_tailed(3000, seed=5)
    sampler = TokenBudgetBatchSampler(lengths, 700, seed=0)
    packed = [len(sampler._pack_mega(e)) for e in range(30)]
    assert min(packed) < sampler.num_batches < max(packed)  # both: splits and the sorted packing
    for epoch in range(30):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == sampler.num_batches
        assert max(padded(lengths, b) for b in batches) <= 700
        assert sorted(i for b in batches for i in b) == list(range(3000))


def test_a_row_over_the_budget_is_a_batch_of_one_with_a_warning():
    lengths = np.array([10] * 50 + [300, 40])
    with pytest.warns(UserWarning, match=r"max_tokens=100: 1 training row.*longest: 300 tokens.*batch of one"):
        sampler = TokenBudgetBatchSampler(lengths, 100)
    batches = list(sampler)
    assert [50] in batches
    assert all(padded(lengths, b) <= 100 for b in batches if b != [50])
    assert sorted(i for b in batches for i in b) == list(range(52))


@pytest.mark.parametrize("n_rows", [2001, 37])
def test_two_ranks_get_equal_counts_and_every_row_once_between_them(n_rows):
    lengths = long_tailed(n_rows, seed=2)
    ranks = [TokenBudgetBatchSampler(lengths, 512, seed=4, rank=r, world_size=2) for r in (0, 1)]
    single = TokenBudgetBatchSampler(lengths, 512, seed=4)
    for epoch in range(3):
        for s in ranks:
            s.set_epoch(epoch)
        got = [list(s) for s in ranks]
        assert len(got[0]) == len(got[1]) == len(ranks[0]) == len(ranks[1])
        rows = [i for batches in got for b in batches for i in b]
        assert sorted(rows) == list(range(n_rows))  # none repeated, none dropped
        assert max(padded(lengths, b) for batches in got for b in batches) <= 512
    assert len(ranks[0]) * 2 in (len(single), len(single) + 1)


def test_a_distributed_sampler_passed_by_lightning_sets_rank_and_world_size():
    from torch.utils.data import DistributedSampler

    lengths = long_tailed(500)
    injected = DistributedSampler(list(range(500)), num_replicas=2, rank=1, shuffle=True)
    sampler = TokenBudgetBatchSampler(lengths, 512, seed=0, sampler=injected)
    assert (sampler.rank, sampler.world_size) == (1, 2)
    assert list(sampler) == list(TokenBudgetBatchSampler(lengths, 512, seed=0, rank=1, world_size=2))
    assert sampler.sampler is sampler  # Lightning's set_epoch (on batch_sampler.sampler) reaches it


def test_lightning_re_creates_it_under_ddp_with_the_rank_of_its_distributed_sampler():
    """What Lightning does to a training loader under DDP (use_distributed_sampler): a BatchSampler subclass
    built in a *_dataloader hook is built again with a DistributedSampler as ``sampler``."""
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DataLoader

    from tunelab.data.samplers import ResumableLoader

    lengths = long_tailed(300)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = ResumableLoader(list(range(300)), batch_sampler=TokenBudgetBatchSampler(lengths, 400, seed=3))
    ranks = [
        _update_dataloader(loader, DistributedSamplerWrapper(loader.sampler, num_replicas=2, rank=r, shuffle=True))
        for r in (0, 1)
    ]
    assert [(d.batch_sampler.rank, d.batch_sampler.world_size) for d in ranks] == [(0, 2), (1, 2)]
    assert len(ranks[0]) == len(ranks[1])
    assert sorted(i for d in ranks for b in d for i in b.tolist()) == list(range(300))


@pytest.mark.parametrize("bad", [0, -5, "many", 2.5, True])
def test_a_bad_max_tokens_is_one_clear_error(bad):
    with pytest.raises(TunelabError, match=rf"data.max_tokens={bad!r} .*positive integer, e.g. data.max_tokens=4096"):
        TuneDataModule(loader=partial(builtin, "mr"), task=SequenceClassification(), tokenizer="minilm", max_tokens=bad)


def test_a_bad_max_tokens_on_the_command_line_is_one_clear_message(tiny_backbone, tmp_path, capsys, monkeypatch):
    from helpers.errors import assert_one_clear_message

    assert_one_clear_message(
        ["data.max_tokens=lots"],
        r"data.max_tokens='lots' is not a number",
        tiny_backbone,
        tmp_path / "run",
        capsys,
        monkeypatch,
    )


def test_datamodule_training_batches_stay_within_the_budget_and_eval_order_is_unchanged(mr_data):
    dm, fixed = mr_data(max_tokens=600), mr_data()
    loader = dm.train_dataloader()
    seen = []
    for batch in loader:
        assert batch["input_ids"].numel() <= 600
        seen += batch["idx"].tolist()
    assert len(seen) == len(set(seen)) == 3200 and len(list(loader)) == len(loader)
    for split in ("val", "test", "predict"):
        a, b = (getattr(d, f"{split}_dataloader")() for d in (dm, fixed))
        assert [x["idx"].tolist() for x in a] == [x["idx"].tolist() for x in b]


def test_training_counts_real_batches_with_accumulation_and_two_ddp_ranks(tiny_backbone, tmp_path, monkeypatch):
    """The real command line, 2 gloo processes: every rank trains the same number of batches (no hang), each
    within the budget, and the schedule's steps are the real batches / accumulate_grad_batches."""
    from helpers.runs import read_metrics, tiny_run, tunelab

    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "budget_probe.py").write_text(
        "import json, lightning as L\n"
        "class Record(L.Callback):\n"
        "    def __init__(self, path):\n        self.path = path\n"
        "    def on_train_batch_start(self, trainer, module, batch, batch_idx):\n"
        "        with open(self.path, 'a') as f:\n"
        "            f.write(json.dumps([trainer.global_rank, trainer.current_epoch, batch_idx,\n"
        "                list(batch['input_ids'].shape), batch['idx'].tolist(),\n"
        "                int(trainer.estimated_stepping_batches)]) + '\\n')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(probe))
    seen, run = tmp_path / "seen.jsonl", tmp_path / "run"
    base = [o for o in tiny_run(tiny_backbone) if not o.startswith(("data.max_samples", "trainer.max_epochs"))]
    result = tunelab(
        "train",
        *base,
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        "trainer.accumulate_grad_batches=2",
        "data.max_samples={train: 90, validation: 16, test: 16}",
        "data.max_tokens=160",
        f"hydra.run.dir={run}",
        "+callbacks.budget._target_=budget_probe.Record",
        f"+callbacks.budget.path={seen}",
        outputs=tmp_path / "outputs",
        timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in seen.read_text().splitlines()]
    per_rank = {r: [x for x in rows if x[0] == r] for r in (0, 1)}
    assert len(per_rank[0]) == len(per_rank[1]) > 4
    for epoch in (0, 1):
        idx = [i for x in rows if x[1] == epoch for i in x[4]]
        assert sorted(idx) == sorted(set(idx)) and len(idx) == 90  # every row once across the ranks
    assert all(shape[0] * shape[1] <= 160 for *_, shape, _, _ in rows)
    per_epoch = len(per_rank[0]) // 2
    assert {x[5] for x in rows} == {2 * -(-per_epoch // 2)}  # the schedule counts real batches
    assert read_metrics(run)["global_steps"] == 2 * -(-per_epoch // 2)


def test_a_resumed_epoch_skips_the_batches_already_trained():
    from tunelab.data.samplers import ResumableLoader

    lengths = long_tailed(400)
    straight = TokenBudgetBatchSampler(lengths, 512, seed=2)
    straight.set_epoch(1)
    fresh = TokenBudgetBatchSampler(lengths, 512, seed=2)  # the resumed run's: built anew, set to epoch 1
    resumed = ResumableLoader(list(range(400)), batch_sampler=fresh, skip_batches=5)
    fresh.set_epoch(1)  # Lightning sets the epoch after iter(), before the first batch (ResumableLoader's _after)
    assert [b.tolist() for b in resumed] == list(straight)[5:]


def test_kill_mid_epoch_then_resume_matches_an_uninterrupted_token_budget_run(tiny_backbone, tmp_path):
    from helpers.runs import ROOT, TESTS, quick, read_metrics, train_in_process

    def args(run, *extra):
        return quick(
            tiny_backbone,
            run,
            "trainer.max_epochs=2",
            "trainer.deterministic=true",
            "~callbacks.early_stopping",
            "optimizer.lr=1e-3",
            "data.max_tokens=200",
            "callbacks.last_checkpoint.every_n_train_steps=3",
            *extra,
        )

    straight, killed, marker = tmp_path / "straight", tmp_path / "killed", tmp_path / "paused"
    assert train_in_process(*args(straight)) == 0
    pause = ["+callbacks.fault._target_=helpers.faults.PauseAt", f"+callbacks.fault.marker={marker}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    command = [sys.executable, "-m", "tunelab", "train", *args(killed, *pause, "+callbacks.fault.epoch=0")]
    proc = subprocess.Popen(
        [*command, "+callbacks.fault.batch=5"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        os.kill(int(marker.read_text()), signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3  # mid-epoch 0
    assert train_in_process(*args(killed, "ckpt_path=last")) == 0
    resumed, reference = read_metrics(killed), read_metrics(straight)
    assert resumed["global_steps"] == reference["global_steps"] > 10
    assert resumed["metrics"] == reference["metrics"]  # bitwise: the resumed epoch skipped what it had trained
