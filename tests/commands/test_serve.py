"""`tunelab serve RUN` as users run it (issue 21, item 1): a real `python -m tunelab serve` process on
127.0.0.1 and a free port, hit with httpx. Its predictions equal `tunelab predict`'s on the same inputs; every
kind of bad request gets its status and a message, and the server still answers /health after all of them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from helpers.runs import ROOT, TESTS, quick, train_in_process, tunelab

TEXTS = ["a fine film", "dull , slow and far too long", "meh", "I laughed , I cried , I want my money back"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tiny_backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_OUTPUTS", str(folder / "outputs"))
        assert train_in_process(*quick(tiny_backbone, folder / "run")) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def server(run):
    """(base url, process): the server with small limits, so the tests can reach them."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    command = [sys.executable, "-m", "tunelab", "serve", str(run), "--port", str(port)]
    limits = ["--max-inputs", "8", "--max-body-bytes", "4000", "--log-level", "warning"]
    process = subprocess.Popen(
        [*command, *limits], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, f"tunelab serve exited:\n{process.stdout.read()}"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "tunelab serve did not answer /health within 120 s"
        time.sleep(0.25)
    yield url, process
    process.terminate()
    process.wait(timeout=30)


def test_predictions_equal_tunelab_predict_on_the_same_inputs(server, run, tmp_path):
    url, _ = server
    inputs = [TEXTS[0], *({"text": t} for t in TEXTS[1:])]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    cli = tunelab("predict", str(run), "--input", str(path), outputs=tmp_path / "outputs")
    assert cli.returncode == 0, cli.stderr
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    response = httpx.post(f"{url}/predict", json={"inputs": inputs}, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"predictions": expected}  # one request, one batch: the same batches as predict


def test_health_and_info(server, run):
    url, _ = server
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    info = httpx.get(f"{url}/info").json()
    assert info["run"] == str(run) and info["task"] == "classification"
    assert sorted(info["labels"]) == ["negative", "positive"] and info["max_length"] == 128
    assert set(info["metrics"]) >= {"test/accuracy", "val/accuracy"}
    assert info["limits"]["max_inputs"] == 8 and info["limits"]["max_body_bytes"] == 4000


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b'{"inputs": ["a fine film"', 422, "The body is not valid JSON (Expecting ',' delimiter at line 1 column"),
        (b"\xff\xfe not text", 422, "The body is not UTF-8 text"),
        (b'{"texts": ["a fine film"]}', 422, 'The body must be a JSON object {"inputs": [...]}; each input: one text'),
        (b'["a fine film"]', 422, 'The body must be a JSON object {"inputs": [...]}'),
        (b'{"inputs": "a fine film"}', 422, '"inputs" must be a list of inputs, not str'),
        (b'{"inputs": []}', 422, '"inputs" is empty: send at least one input'),
        (b"[" * 1900 + b"]" * 1900, 422, "The body's JSON is nested too deeply to read."),
        (
            b'{"inputs": ["ok", {"sentence": "good"}]}',
            422,
            "inputs[1] must be an object with the key(s) 'text' (or the training data's column names: ['text']); "
            "task=classification takes one text per line",
        ),
        (b'{"inputs": [{"text": 5}]}', 422, "inputs[0]: 'text' must be a string, not 5; task=classification takes"),
        (b'{"inputs": [3]}', 422, "inputs[0] must be an object with the key(s) 'text'"),
        (
            json.dumps({"inputs": ["x"] * 9}).encode(),
            413,
            "9 inputs in one request: at most 8 (--max-inputs). Split them into several requests.",
        ),
        (
            json.dumps({"inputs": ["x" * 5000]}).encode(),
            413,
            "The request body is over 4000 bytes (--max-body-bytes). Send fewer or shorter inputs per request.",
        ),
    ],
)
def test_bad_requests_get_their_status_and_a_message(server, body, status, message):
    url, process = server
    response = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"].startswith(message), response.json()
    assert process.poll() is None


def test_a_chunked_body_over_the_limit_is_413_too(server):
    url, _ = server

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"inputs": ["'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"]}'

    response = httpx.post(f"{url}/predict", content=chunks())
    assert response.status_code == 413 and "over 4000 bytes (--max-body-bytes)" in response.json()["error"]


def test_unknown_route_and_wrong_method(server):
    url, _ = server
    missing = httpx.get(f"{url}/predictions")
    assert missing.status_code == 404
    assert missing.json()["error"] == "No route GET /predictions. The routes: POST /predict, GET /health, GET /info."
    wrong = httpx.get(f"{url}/predict")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"].startswith("GET /predict is not allowed.")


def test_after_every_bad_request_the_server_still_answers(server):
    url, process = server
    assert process.poll() is None
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert httpx.post(f"{url}/predict", json={"inputs": ["still here"]}).status_code == 200


def test_help_does_not_import_the_server():
    code = (
        "import sys; from tunelab.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "serve a run's predictions over HTTP" in out and out.splitlines()[-1] == "[]"


def test_a_bad_limit_is_refused_before_the_run_loads(capsys):
    from tunelab.cli import main

    assert main(["serve", "no/such/run", "--max-batch-size", "0"]) == 2
    assert "error: --max-batch-size must be at least 1." in capsys.readouterr().err
