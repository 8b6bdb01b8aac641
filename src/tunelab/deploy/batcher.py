"""Dynamic batching for ``tunelab serve``: concurrent requests share one model call.

Requests wait in an asyncio queue. The first one opens a batch; more join until the batch holds
``max_batch_size`` inputs or ``max_wait_ms`` has passed since it opened, whichever comes first. A request
is never split: one that would overflow the open batch starts the next one (and one larger than
``max_batch_size`` runs alone). The model runs in one worker thread, so the event loop keeps accepting and
answering requests while it computes, and the model (which is not thread safe: predict swaps the data
module's inputs) is only ever called from that thread, one batch at a time. Each request gets its own
inputs' results back, in its order.

A batch whose call fails is run again one request at a time, so a bad input fails its own request and
no other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class _Request:
    items: Sequence
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the batcher has done so far (``/health`` shows it; the load test reads it)."""

    requests: int = 0
    inputs: int = 0
    batches: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    seconds_in_model: float = 0.0

    def as_dict(self) -> dict:
        mean = self.inputs / self.batches if self.batches else 0.0
        return {
            "requests": self.requests,
            "inputs": self.inputs,
            "batches": self.batches,
            "mean_batch_inputs": round(mean, 2),
            "largest_batch": self.largest_batch,
            "failed_batches": self.failed_batches,
            "seconds_in_model": round(self.seconds_in_model, 3),
        }


class Batcher:
    """``await batcher.submit(items)`` -> ``run_batch``'s results for ``items``, in their order.

    ``run_batch(list) -> list`` takes the inputs of every request in a batch, concatenated, and returns one
    result per input in the same order. Use ``async with Batcher(...)`` (or ``start``/``stop``) inside the
    event loop that serves the requests."""

    def __init__(self, run_batch: Callable[[list], list], max_batch_size: int = 32, max_wait_ms: float = 5.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._carry: _Request | None = None  # the request that did not fit the last batch

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunelab-model")
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="tunelab-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._thread is not None:
            self._thread.shutdown(wait=True)  # a batch already in the model finishes
        self._worker = self._thread = None

    async def __aenter__(self) -> Batcher:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def submit(self, items: Sequence) -> list:
        if self._queue is None:
            raise RuntimeError("the batcher is not started: use 'async with Batcher(...)' or await start()")
        if not items:
            return []
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(list(items), future))
        return await future

    async def _next_batch(self) -> list[_Request]:
        """Requests for one model call: the first, then whoever arrives within max_wait and fits."""
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            left = deadline - time.monotonic()
            try:
                request = self._queue.get_nowait() if left <= 0 else await asyncio.wait_for(self._queue.get(), left)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if size + len(request.items) > self.max_batch_size:
                self._carry = request
                break
            batch.append(request)
            size += len(request.items)
        return [request for request in batch if not request.future.done()]  # a client that left is not run

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run(batch)

    async def _call(self, items: list) -> list:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._thread, self.run_batch, items)
        finally:
            self.stats.seconds_in_model += time.perf_counter() - started
        if len(results) != len(items):
            raise RuntimeError(f"the model returned {len(results)} results for {len(items)} inputs")
        return list(results)

    async def _run(self, batch: list[_Request]) -> None:
        items = [item for request in batch for item in request.items]
        self.stats.requests += len(batch)
        self.stats.inputs += len(items)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        try:
            results = await self._call(items)
        except Exception as err:  # noqa: BLE001  (told to each request, never raised out of the loop)
            self.stats.failed_batches += 1
            if len(batch) == 1:
                _settle(batch[0].future, error=err)
                return
            for request in batch:  # whose input failed it: each request alone
                try:
                    _settle(request.future, await self._call(list(request.items)))
                except Exception as alone:  # noqa: BLE001
                    _settle(request.future, error=alone)
            return
        start = 0
        for request in batch:
            _settle(request.future, results[start : start + len(request.items)])
            start += len(request.items)


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away while its batch ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
