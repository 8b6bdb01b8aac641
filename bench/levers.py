"""Issue 8 levers, measured in one process on the same batches, interleaved (A B C ..., A B C ...).

    python bench/levers.py [--batches 4] [--rounds 3] [--threads N] [--compile]

One MiniLM training step (forward, backward, clip, AdamW) per lever and batch, on random-order
batches of 32 MR sentences from tunelab's tokenized cache, dynamic padding. Prints the median step
time per lever and its ratio to the baseline (fp32, --threads torch threads, SDPA attention, fused
AdamW: what tunelab now runs), and how long collating a batch takes (the work dataloader workers
would take over). --compile adds torch.compile (its compile time is printed separately).
A microbenchmark for choosing levers; bench/throughput.py measures the real command. On a machine
that other jobs share, use --threads 1: with 2 threads on 2 busy cores, steps spend most of their
time waiting at OpenMP barriers and every 2-thread ratio is noise.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads of the baseline (default: torch's, the core count)")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()

    import datasets
    import torch
    from hydra import compose, initialize_config_dir
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
    )

    from tunelab.config import config_dir, instantiate
    from tunelab.model.backbone import resolve_backbone

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=."])
    dm = instantiate(cfg.data, "data", task=instantiate(cfg.task, "task"))
    dm.task.setup(dm.tokenizer, dm.learn_labels())
    dm.setup("fit")  # tunelab's cached token ids
    path = resolve_backbone(cfg.model.backbone)
    datasets.disable_progress_bars()
    train = dm.splits["train"].remove_columns(["idx", "length"])
    pad = DataCollatorWithPadding(AutoTokenizer.from_pretrained(path))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1)).tolist()
    collate_s, batches = [], []
    for k in range(args.batches):
        started = time.perf_counter()
        batches.append(pad([train[i] for i in order[k * 32 : (k + 1) * 32]]))
        collate_s.append(time.perf_counter() - started)

    def model(attn: str = "sdpa"):
        torch.manual_seed(0)
        m = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation=attn)
        return m.train()

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    other = 1 if threads > 1 else 2
    levers = {  # name -> (attention, fused AdamW, autocast dtype, threads)
        "baseline": ("sdpa", True, None, threads),
        "adamw_not_fused": ("sdpa", False, None, threads),
        "eager_attention": ("eager", True, None, threads),
        "bf16_autocast": ("sdpa", True, torch.bfloat16, threads),
        f"threads_{other}": ("sdpa", True, None, other),
    }
    built = {}
    for name, (attn, fused, dtype, n) in levers.items():
        m = model(attn)
        built[name] = (m, torch.optim.AdamW(m.parameters(), lr=5e-5, fused=fused), dtype, n)
    compile_s = None
    if args.compile:
        m = model()
        fn = torch.compile(m, dynamic=True)
        built["torch_compile"] = (fn, torch.optim.AdamW(m.parameters(), lr=5e-5, fused=True), None, threads)

    def step(m, optimizer, dtype, n, batch) -> float:
        torch.set_num_threads(n)
        started = time.perf_counter()
        ctx = torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext()
        with ctx:
            loss = m(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in optimizer.param_groups[0]["params"]], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.set_num_threads(threads)
        return time.perf_counter() - started

    for name, (m, optimizer, dtype, n) in built.items():  # warm-up: first-call costs, optimizer state
        first = step(m, optimizer, dtype, n, batches[0])
        if name == "torch_compile":
            compile_s = first
    times = {name: [] for name in built}
    for _ in range(args.rounds):
        for batch in batches:
            for name, (m, optimizer, dtype, n) in built.items():
                times[name].append(step(m, optimizer, dtype, n, batch))
    base = statistics.median(times["baseline"])
    widths = [b["input_ids"].shape[1] for b in batches]
    print(f"{len(batches)} batches of 32 (padded widths {widths}), {args.rounds} rounds, {threads} threads")
    print(f"collating a batch: median {statistics.median(collate_s) * 1000:.1f} ms")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<16} step {median:6.3f} s   {base / median:5.2f}x baseline speed")
    if compile_s is not None:
        print(f"torch_compile first step (compiling) {compile_s:.1f} s")


if __name__ == "__main__":
    main()
