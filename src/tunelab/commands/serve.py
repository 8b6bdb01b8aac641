"""``tunelab serve RUN``: a finished run's predictions over HTTP (uvicorn serving a Starlette app).

  POST /predict  {"inputs": [...]}: the inputs ``tunelab predict`` takes, as JSON (a string is one text, an
                 object one row) -> {"predictions": [...]}, what ``tunelab predict`` writes for them
  GET  /health   {"status": "ok", ...}
  GET  /info     task, backbone, labels, max length, the run's metrics, limits

Concurrent requests are batched: the first waits up to --max-wait-ms for others, up to --max-batch-size
inputs per model call. Errors are JSON {"error": ...} (413 over a limit, 422 a body or input that does not
fit); the server keeps running. It binds 127.0.0.1 unless --host says otherwise: put anything reachable
from other machines behind your own proxy (there is no authentication).
"""

from __future__ import annotations

import argparse

from tunelab.errors import TunelabError


def parser() -> argparse.ArgumentParser:
    from tunelab.commands.predict import FORMATS

    p = argparse.ArgumentParser(
        prog="tunelab serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="input per task:\n"
        + "\n".join(f"  {k:<22}{v}" for k, v in FORMATS.items())
        + '\n\nexample:\n  curl -s localhost:8000/predict -d \'{"inputs": ["a fine film", {"text": "dull"}]}\'',
    )
    p.add_argument("run", help="a run directory (or 'latest')")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    p.add_argument("--max-batch-size", type=int, default=32, help="inputs per model call, across requests")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill (ms)")
    p.add_argument("--max-inputs", type=int, default=256, help="inputs in one request (more: 413)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="request body size (more: 413)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        import uvicorn

        from tunelab.deploy.serve import Limits, app_for_run
    except ImportError as err:
        raise TunelabError(
            f"tunelab serve needs the 'serve' extra ({err.name} is not installed): pip install 'tunelab[serve]'."
        ) from err
    if not 0 <= args.port <= 65535:
        raise TunelabError(f"--port must be 0..65535, got {args.port}.")
    limits = Limits(args.max_batch_size, args.max_wait_ms, args.max_inputs, args.max_body_bytes)
    limits.check()  # before the model loads, not after

    from tunelab.run.record import load_run

    app = app_for_run(load_run(args.run), limits)
    # one process, one event loop: the model lives in this process (a worker per core would load it again)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0
