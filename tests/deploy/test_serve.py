"""The serving app and its dynamic batcher (issue 21, item 1), in this process: the batcher's batches, order,
worker thread and error isolation with a stand-in model; the app on a tiny trained run through httpx's ASGI
transport (predictions equal to predict_rows, concurrent requests sharing batches, mixed row shapes, the
model failing without the app failing). The real server process is in tests/commands/test_serve.py."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from helpers.runs import quick, train_in_process
from tunelab.deploy.batcher import Batcher
from tunelab.deploy.serve import Limits, app_for_run, create_app
from tunelab.errors import TunelabError


def _run(coro):
    return asyncio.run(coro)


class Recorder:
    """A stand-in model: upper-cases its inputs and records each call (its size and thread)."""

    def __init__(self, seconds: float = 0.0):
        self.calls: list[list] = []
        self.threads: set[str] = set()
        self.seconds = seconds

    def __call__(self, items: list) -> list:
        self.calls.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        if "bad" in items:
            raise TunelabError("'bad' is not an input")
        return [item.upper() for item in items]


def test_concurrent_requests_share_a_batch_and_each_gets_its_inputs_in_order():
    model = Recorder()

    async def go():
        async with Batcher(model, max_batch_size=32, max_wait_ms=100) as batcher:
            requests = [[f"r{i}a", f"r{i}b", f"r{i}c"] for i in range(6)]
            return requests, await asyncio.gather(*(batcher.submit(r) for r in requests)), batcher.stats

    requests, results, stats = _run(go())
    assert results == [[item.upper() for item in r] for r in requests]
    assert len(model.calls) == 1 and len(model.calls[0]) == 18  # one model call for six requests
    assert stats.requests == 6 and stats.batches == 1 and stats.largest_batch == 18


def test_batches_stop_at_max_batch_size_and_a_request_is_never_split():
    model = Recorder()

    async def go():
        async with Batcher(model, max_batch_size=8, max_wait_ms=50) as batcher:
            requests = [[f"{i}.{j}" for j in range(3)] for i in range(5)] + [[f"big{j}" for j in range(20)]]
            return requests, await asyncio.gather(*(batcher.submit(r) for r in requests))

    requests, results = _run(go())
    assert results == [[item.upper() for item in r] for r in requests]
    sizes = [len(call) for call in model.calls]
    assert sizes[-1] == 20 and all(size <= 8 for size in sizes[:-1])  # 3 + 3 fit, a third 3 does not
    assert sorted(sizes) == [3, 6, 6, 20]


def test_max_wait_bounds_how_long_a_lone_request_waits():
    model = Recorder()

    async def go():
        async with Batcher(model, max_batch_size=32, max_wait_ms=30) as batcher:
            started = time.perf_counter()
            await batcher.submit(["alone"])
            return time.perf_counter() - started

    assert 0.025 <= _run(go()) < 0.5


def test_the_model_runs_in_one_worker_thread_while_the_event_loop_goes_on():
    model = Recorder(seconds=0.3)
    ticks = []

    async def ticker():
        for _ in range(50):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    async def go():
        async with Batcher(model, max_batch_size=2, max_wait_ms=0) as batcher:
            tick = asyncio.create_task(ticker())
            await asyncio.gather(*(batcher.submit([f"x{i}"]) for i in range(3)))
            tick.cancel()

    _run(go())
    assert len(model.threads) == 1 and next(iter(model.threads)).startswith("tunelab-model")
    assert len(ticks) >= 10  # ~0.6 s of model calls (10 ms ticks); a blocked loop would have ticked once


def test_a_failing_input_fails_its_own_request_only():
    model = Recorder()

    async def go():
        async with Batcher(model, max_batch_size=32, max_wait_ms=50) as batcher:
            return await asyncio.gather(
                batcher.submit(["a"]), batcher.submit(["bad"]), batcher.submit(["b", "c"]), return_exceptions=True
            ), batcher.stats

    (first, second, third), stats = _run(go())
    assert first == ["A"] and third == ["B", "C"]
    assert isinstance(second, TunelabError) and "'bad' is not an input" in str(second)
    assert stats.failed_batches == 1


def test_a_model_crash_is_a_500_and_the_app_answers_after_it():
    def model(rows):
        if any(row["text"] == "boom" for row in rows):
            raise RuntimeError("CUDA out of memory (pretend)")
        return [{"label": row["text"]} for row in rows]

    app = create_app(model, lambda inputs: [{"text": t} for t in inputs], {"task": "classification"})

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                crash = await client.post("/predict", json={"inputs": ["boom"]})
                fine = await client.post("/predict", json={"inputs": ["ok"]})
                return crash, fine, await client.get("/health")

    crash, fine, health = _run(go())
    assert crash.status_code == 500
    assert crash.json() == {"error": "Prediction failed: RuntimeError: CUDA out of memory (pretend)"}
    assert fine.json() == {"predictions": [{"label": "ok"}]}
    assert health.json()["status"] == "ok"


def test_limits_are_checked_before_anything_runs():
    with pytest.raises(TunelabError, match="--max-batch-size must be at least 1"):
        Limits(max_batch_size=0).check()
    with pytest.raises(TunelabError, match="--max-wait-ms must be 0 or more"):
        Limits(max_wait_ms=-1).check()


# ---- the app on a real (tiny) trained run


@pytest.fixture(scope="module")
def loaded(tiny_backbone, tmp_path_factory):
    from tunelab.run.record import load_run

    folder = tmp_path_factory.mktemp("serve-app")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_OUTPUTS", str(folder / "outputs"))
        assert train_in_process(*quick(tiny_backbone, folder / "run")) == 0
    return load_run(str(folder / "run"))


TEXTS = [
    "a fine film",
    "dull , slow and far too long",
    "the best thing I have seen this year , with a cast that never puts a foot wrong",
    "meh",
    "an ambitious mess",
    "I laughed , I cried , I want my money back",
]


def _same(got: list[dict], expected: list[dict]) -> None:
    """Labels equal; scores equal to float noise (batch padding changes the sums' order, not the result)."""
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def test_info_and_predictions_of_a_trained_run(loaded):
    from tunelab.commands.predict import predict_rows

    cfg, module, datamodule, run_dir = loaded
    expected = predict_rows(module, datamodule, [{"text": t} for t in TEXTS])
    app = app_for_run(loaded, Limits(max_wait_ms=0))

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                inputs = [TEXTS[0], *({"text": t} for t in TEXTS[1:])]  # a string is a text, as a plain line
                return (await client.post("/predict", json={"inputs": inputs})), (await client.get("/info")).json()

    response, info = _run(go())
    assert response.status_code == 200
    _same(response.json()["predictions"], expected)
    assert info["task"] == "classification" and info["backbone"] == cfg.model.backbone
    assert sorted(info["labels"]) == ["negative", "positive"] and info["max_length"] == datamodule.max_length
    assert info["metrics"]["test/accuracy"] == pytest.approx(
        __import__("json").loads((run_dir / "metrics.json").read_text())["metrics"]["test/accuracy"]
    )
    assert info["limits"] == {"max_batch_size": 32, "max_wait_ms": 0, "max_inputs": 256, "max_body_bytes": 1_000_000}


def test_concurrent_requests_with_different_row_shapes_are_batched_and_each_answered(loaded):
    from tunelab.commands.predict import predict_rows

    _, module, datamodule, _ = loaded
    expected = predict_rows(module, datamodule, [{"text": t} for t in TEXTS])
    app = app_for_run(loaded, Limits(max_batch_size=8, max_wait_ms=100))
    # one dataset holds one set of columns: an extra key must not break (or change) the other requests
    bodies = [{"inputs": [t]} if i % 2 else {"inputs": [{"text": t, "id": i}]} for i, t in enumerate(TEXTS)]

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
                return responses, (await client.get("/health")).json()

    responses, health = _run(go())
    assert [r.status_code for r in responses] == [200] * len(TEXTS)
    _same([r.json()["predictions"][0] for r in responses], expected)
    assert health["batching"]["requests"] == len(TEXTS) and health["batching"]["batches"] < len(TEXTS)
