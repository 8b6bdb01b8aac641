"""The HTTP app behind ``tunelab serve``: three Starlette routes in front of a dynamic batcher.

Starlette (run by uvicorn), not FastAPI: the API is three routes and one small JSON body, checked by the
same code that checks ``tunelab predict``'s input files (``commands/predict.rows_from_inputs``), so a schema
layer (FastAPI's pydantic models) would only repeat those checks in a second place, with its own error
wording; FastAPI is Starlette plus that layer, so Starlette + uvicorn is the whole dependency (extra
``serve``).

  POST /predict  {"inputs": [...]} -> {"predictions": [...]}, one per input in its order, each exactly
                 the JSON line ``tunelab predict`` writes for that input
  GET  /health   {"status": "ok", "batching": what the batcher has done}
  GET  /info     task, backbone, labels, max_length, the run's metrics, the input format, the limits

Every error is JSON ``{"error": message}``: 413 a body over ``max_body_bytes`` or more than ``max_inputs``
inputs; 422 a body that is not JSON, no list ``"inputs"``, or an input the task cannot take (predict's own
message); 404 / 405 an unknown route or method; 500 the model itself failed. None of them stops the server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tunelab.deploy.batcher import Batcher
from tunelab.errors import TunelabError

log = logging.getLogger("tunelab.serve")
ROUTES = "POST /predict, GET /health, GET /info"


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 32  # inputs per model call, across requests
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_inputs: int = 256  # inputs in one request
    max_body_bytes: int = 1_000_000  # one request's body

    def check(self) -> None:
        for name, value in asdict(self).items():
            if value < (0 if name == "max_wait_ms" else 1):
                flag = "--" + name.replace("_", "-")
                raise TunelabError(f"{flag} must be {'0 or more' if name == 'max_wait_ms' else 'at least 1'}.")


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    predict: Callable[[list[dict]], list[dict]],
    to_rows: Callable[[list], list[dict]],
    info: dict,
    limits: Limits = Limits(),
) -> Starlette:
    """The app. ``predict(rows) -> predictions`` runs in the batcher's one worker thread; ``to_rows(inputs)``
    turns a request's ``"inputs"`` into rows (TunelabError: 422 with its message); ``info``: ``/info``'s body."""
    limits.check()
    batcher = Batcher(predict, limits.max_batch_size, limits.max_wait_ms)
    takes = info.get("input", "")

    async def read_body(request: Request) -> bytes | None:
        """The body, or None once it is over the limit. Counted here rather than by Starlette's own
        max_body_size, which answers a declared Content-Length in plain text, without the limit's name."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                return None
        return bytes(body)

    async def predict_route(request: Request) -> JSONResponse:
        body = await read_body(request)
        if body is None:
            return error(
                413,
                f"The request body is over {limits.max_body_bytes} bytes (--max-body-bytes). "
                "Send fewer or shorter inputs per request.",
            )
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as err:
            return error(422, f"The body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}).")
        except UnicodeDecodeError:
            return error(422, "The body is not UTF-8 text: send JSON in UTF-8.")
        except RecursionError:
            return error(422, "The body's JSON is nested too deeply to read.")
        if not isinstance(payload, dict) or "inputs" not in payload:
            return error(422, f'The body must be a JSON object {{"inputs": [...]}}; each input: {takes}.')
        inputs = payload["inputs"]
        if not isinstance(inputs, list):
            kind = type(inputs).__name__
            return error(422, f'"inputs" must be a list of inputs, not {kind}: {{"inputs": [...]}}; each: {takes}.')
        if not inputs:
            return error(422, f'"inputs" is empty: send at least one input ({takes}).')
        if len(inputs) > limits.max_inputs:
            return error(
                413,
                f"{len(inputs)} inputs in one request: at most {limits.max_inputs} (--max-inputs). "
                "Split them into several requests.",
            )
        try:
            predictions = await batcher.submit(to_rows(inputs))
        except TunelabError as err:
            return error(422, str(err))
        except Exception as err:  # noqa: BLE001  (the model failed on this request; the server goes on)
            log.exception("prediction failed")
            return error(500, f"Prediction failed: {type(err).__name__}: {str(err)[:300]}")
        return JSONResponse({"predictions": predictions})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "batching": batcher.stats.as_dict()})

    async def info_route(request: Request) -> JSONResponse:
        return JSONResponse({**info, "limits": asdict(limits)})

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        message = {
            404: f"No route {where}. The routes: {ROUTES}.",
            405: f"{where} is not allowed. The routes: {ROUTES}.",
        }.get(exc.status_code, str(exc.detail))
        return error(exc.status_code, message, exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"Internal error: {type(exc).__name__}: {str(exc)[:300]}")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        async with batcher:
            yield

    app = Starlette(
        routes=[
            Route("/predict", predict_route, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/info", info_route, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    return app


def run_predictor(module, datamodule, batch_size: int) -> Callable[[list[dict]], list[dict]]:
    """``predict(rows)`` for the batcher: ``tunelab predict``'s own ``predict_rows``, once per set of keys (one
    dataset holds one set of columns, and requests may differ: {"text"} and {"text", "text_pair"})."""
    import datasets

    from tunelab.commands.predict import predict_rows

    datasets.disable_progress_bars()  # a "tokenizing predict" bar per batch is noise in a server log
    datamodule.eval_batch_size = batch_size

    def predict(rows: list[dict]) -> list[dict]:
        groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(tuple(sorted(row)), []).append(i)
        out: list = [None] * len(rows)
        for indices in groups.values():
            for i, prediction in zip(indices, predict_rows(module, datamodule, [rows[i] for i in indices])):
                out[i] = prediction
        return out

    return predict


def run_info(cfg, module, datamodule, run_dir: Path) -> dict:
    """``/info``: what a client needs to know about the served run."""
    from tunelab.commands.predict import FORMATS
    from tunelab.data.raw_splits import task_label

    summary = json.loads((Path(run_dir) / "metrics.json").read_text())
    name = task_label(module.task)
    labels = getattr(module.task, "labels", None)
    return {
        "run": str(run_dir),
        "task": name,
        "backbone": str(cfg.model.backbone),
        "labels": list(labels) if labels else None,
        "max_length": datamodule.max_length,
        "metrics": summary.get("metrics", {}),
        "monitor": summary.get("monitor"),
        "input": FORMATS.get(name, FORMATS["classification"]),
    }


def app_for_run(loaded: tuple, limits: Limits = Limits()) -> Starlette:
    """The app serving a run: ``loaded`` is ``tunelab.run.record.load_run``'s result."""
    from tunelab.commands.predict import rows_from_inputs
    from tunelab.data.raw_splits import task_label

    cfg, module, datamodule, run_dir = loaded
    name, columns = task_label(module.task), dict(datamodule.columns)
    return create_app(
        run_predictor(module, datamodule, limits.max_batch_size),
        lambda inputs: rows_from_inputs(inputs, name, columns),
        run_info(cfg, module, datamodule, run_dir),
        limits,
    )
