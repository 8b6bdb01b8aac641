"""Integration: the real MiniLM on the real MR corpus, then predict, export and transformers.pipeline.

A short run (80 optimizer steps), enough for decisive predictions; the full default experiment is
`make run` and its numbers are in the README.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.runs import ROOT, read_metrics, train_in_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("minilm") / "run"
    code = train_in_process(
        "trainer.max_epochs=1",
        "data.max_samples.train=2560",
        f"hydra.run.dir={run}",
        "print_config=false",
        "~callbacks.progress_bar",
        "trainer.log_every_n_steps=5",
    )
    assert code == 0
    return run


def test_run_reaches_better_than_chance_and_writes_its_files(run_dir):
    metrics = read_metrics(run_dir)
    assert metrics["global_steps"] == 80
    assert metrics["data"]["sizes"] == {"train": 2560, "validation": 400, "test": 400}
    assert metrics["parameters"]["total"] == 22_713_986  # MiniLM-L6 (22,713,216) + a 384x2 classifier
    assert metrics["metrics"]["test/accuracy"] > 0.65  # 50% is chance on the balanced MR test split
    for name in (
        "config.yaml",
        "run.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
        ".hydra/overrides.yaml",
    ):
        assert (run_dir / name).exists(), name


@pytest.fixture(scope="module")
def test_texts(run_dir):

    # the same 80/10/10 split as training, rebuilt from the run's config
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / "config.yaml")
    dm = instantiate(cfg.data, task=instantiate(cfg.task))
    dm.task.setup(dm.tokenizer, dm.learn_labels())
    dm.setup()
    raw = dm._raw_splits()["test"]
    return raw["text"], raw["label"]


def test_predict_export_and_pipeline_agree_on_the_test_split(run_dir, test_texts, tmp_path):
    texts, gold = test_texts
    inputs = tmp_path / "test.txt"
    inputs.write_text("\n".join(texts) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "predict", str(run_dir), "--input", str(inputs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    predicted = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(predicted) == len(texts) == 400
    accuracy = sum(p["label"] == g for p, g in zip(predicted, gold)) / len(gold)
    assert accuracy == pytest.approx(read_metrics(run_dir)["metrics"]["test/accuracy"], abs=1e-6)

    out = tmp_path / "exported"
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "export", str(run_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    card = (out / "README.md").read_text()
    accuracy = read_metrics(run_dir)["metrics"]["test/accuracy"]
    assert f"| accuracy | test | {accuracy:.4f} |" in card and 'pipeline("text-classification"' in card
    assert "sentence-transformers/all-MiniLM-L6-v2" in card  # the real backbone, not "minilm"

    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(out), device=-1)
    piped = pipe(list(texts), batch_size=64)
    assert [p["label"] for p in piped] == [p["label"] for p in predicted]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(piped, predicted)) < 1e-4


def test_export_refuses_to_overwrite_and_push_fails_clearly_offline(run_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "export", str(run_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 2 and "exists and is not empty" in proc.stderr
    assert (out / "keep.txt").read_text() == "mine"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunelab",
            "export",
            str(run_dir),
            "--out",
            str(tmp_path / "new"),
            "--push-to-hub",
            "someone/model",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 2
    assert "Could not push" in proc.stderr and "The export itself is complete" in proc.stderr
    assert (tmp_path / "new" / "model.safetensors").exists()
