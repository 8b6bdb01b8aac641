"""`tunelab compare`'s statistics on synthetic sweeps whose answer is known.

Two configurations drawn from one distribution must not differ significantly; one 10 points lower
must; seeds shared between configurations are paired; per-example tests read test_predictions.jsonl.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tunelab.cli import main
from tunelab.sweeps import stats
from tunelab.sweeps.compare import compare

SEEDS = [1, 2, 3, 4, 5]


def _run(folder: Path, overrides: list[str], accuracy: float, predictions: list[dict] | None = None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "metrics": {"test/accuracy": accuracy, "val/accuracy": accuracy},
                "monitor": {"metric": "val/accuracy", "mode": "max", "best": accuracy},
            }
        )
    )
    (folder / "run.json").write_text(json.dumps({"status": "completed"}))
    if predictions is not None:
        (folder / "test_predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))


def _sweep(root: Path, results: dict[tuple[str, int], float], predictions=None) -> Path:
    for num, ((lr, seed), accuracy) in enumerate(results.items()):
        _run(
            root / str(num),
            [f"optimizer.lr={lr}", f"seed={seed}"],
            accuracy,
            predictions(lr, seed) if predictions else None,
        )
    return root


def _summary(root: Path) -> dict[str, dict]:
    return {r["optimizer.lr"]: r for r in csv.DictReader(open(root / "compare" / "summary.csv"))}


def test_one_distribution_is_not_significant_ten_points_lower_is(tmp_path, capsys):
    rng = np.random.default_rng(7)
    # A and B: the same distribution (MR's seed spread, 2 points); C: 10 points lower
    draws = {lr: 0.80 + 0.02 * rng.standard_normal(len(SEEDS)) for lr in ("A", "B")}
    draws["C"] = 0.70 + 0.02 * rng.standard_normal(len(SEEDS))
    root = _sweep(tmp_path / "sweep", {(lr, s): float(v) for lr, vals in draws.items() for s, v in zip(SEEDS, vals)})
    result = compare([str(root)])
    out = capsys.readouterr().out
    summary = _summary(root)
    best = result["best"].key[0]
    runner = "B" if best == "A" else "A"
    assert summary[best]["best"] == "*" and summary[best]["p_vs_best"] == ""  # empty on the best row
    assert float(summary[runner]["p_vs_best"]) > 0.05
    assert float(summary["C"]["p_vs_best"]) < 0.001
    assert summary[runner]["test"] == summary["C"]["test"] == "paired t"  # every seed is shared

    # the p-values are scipy's paired t-test, Holm-corrected over the 2 comparisons
    raw = {lr: scipy_stats.ttest_rel(draws[best], draws[lr]).pvalue for lr in (runner, "C")}
    low, high = sorted(raw.values())
    assert float(summary["C"]["p_vs_best"]) == pytest.approx(min(1, 2 * raw["C"]), abs=1e-4)
    assert float(summary[runner]["p_vs_best"]) == pytest.approx(max(min(1, 2 * low), min(1, high)), abs=1e-4)

    # 95% confidence interval of each mean: Student t with n - 1 degrees of freedom
    want = scipy_stats.t.interval(0.95, 4, loc=np.mean(draws["C"]), scale=scipy_stats.sem(draws["C"]))
    assert (float(summary["C"]["ci95_low"]), float(summary["C"]["ci95_high"])) == pytest.approx(want, abs=1e-4)

    sentence = f"The best (optimizer.lr={best}) is NOT significantly better than the runner-up (optimizer.lr={runner})"
    assert sentence in out and sentence in (root / "compare" / "compare.md").read_text()


def test_ten_points_better_is_significant_in_the_sentence(tmp_path, capsys):
    rng = np.random.default_rng(3)
    results = {
        (lr, s): float(base + 0.02 * rng.standard_normal()) for lr, base in (("hi", 0.80), ("lo", 0.70)) for s in SEEDS
    }
    root = _sweep(tmp_path / "sweep", results)
    assert main(["compare", str(root)]) == 0
    assert (
        "The best (optimizer.lr=hi) is significantly better than the runner-up (optimizer.lr=lo) at alpha 0.05: "
        "paired t-test on 5 shared seeds"
    ) in capsys.readouterr().out


def test_shared_seeds_are_paired_other_seeds_get_welch(tmp_path):
    # the seed moves both configurations by up to 6 points; A is 1 point better on every seed
    seed_effect = {1: 0.0, 2: 0.06, 3: -0.04, 4: 0.03, 5: -0.05}
    noise = dict(zip(SEEDS, [0.001, -0.002, 0.0015, -0.001, 0.0005]))
    paired = {
        **{("A", s): 0.80 + e + 0.01 for s, e in seed_effect.items()},
        **{("B", s): 0.80 + e + noise[s] for s, e in seed_effect.items()},
    }
    root = _sweep(tmp_path / "paired", paired)
    compare([str(root)])
    row = _summary(root)["B"]
    assert row["test"] == "paired t" and float(row["p_vs_best"]) < 0.001  # the seed's effect cancels
    # the same numbers with B on other seeds: unpaired, Welch's test sees the seed spread and cannot tell
    welch = {
        **{("A", s): v for (lr, s), v in paired.items() if lr == "A"},
        **{("B", s + 10): v for (lr, s), v in paired.items() if lr == "B"},
    }
    root = _sweep(tmp_path / "welch", welch)
    compare([str(root)])
    row = _summary(root)["B"]
    a = [v for (lr, _), v in welch.items() if lr == "A"]
    b = [v for (lr, _), v in welch.items() if lr == "B"]
    assert row["test"] == "Welch t"
    assert float(row["p_vs_best"]) == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue, abs=1e-4)
    assert float(row["p_vs_best"]) > 0.5


def test_holm_matches_the_step_down_definition():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    adjusted = stats.holm([math.nan, 0.02])
    assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)  # nan is not a comparison


def test_one_seed_each_says_what_is_missing(tmp_path, capsys):
    root = _sweep(tmp_path / "sweep", {("A", 1): 0.8, ("B", 1): 0.7})
    compare([str(root)])
    assert (
        "Not enough runs to test whether optimizer.lr=A beats the runner-up optimizer.lr=B" in capsys.readouterr().out
    )
    assert _summary(root)["B"]["p_vs_best"] == "" and _summary(root)["B"]["ci95_low"] == ""


def _rows(correct: np.ndarray) -> list[dict]:
    return [
        {"id": i, "prediction": "pos" if c else "neg", "gold": "pos", "correct": bool(c)} for i, c in enumerate(correct)
    ]


def test_per_example_bootstrap_and_mcnemar_on_test_predictions(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = 400
    # "good" is right on 85% of the rows, "bad" on 75%; "twin" makes the same predictions as "good" but 4 rows
    base = {s: rng.random(rows) for s in SEEDS[:3]}
    right = {"good": {s: b < 0.85 for s, b in base.items()}, "bad": {s: b < 0.75 for s, b in base.items()}}
    right["twin"] = {s: v.copy() for s, v in right["good"].items()}
    for s in right["twin"]:
        right["twin"][s][:4] = ~right["twin"][s][:4]
    results = {(lr, s): float(v.mean()) for lr in ("good", "bad") for s, v in right[lr].items()}
    root = _sweep(tmp_path / "far", results, lambda lr, s: _rows(right[lr][s]))
    out = compare([str(root)]) and capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("Per example"))
    assert "400 shared test rows" in line and "(significant at 0.05)" in line
    a, b = right["good"][1], right["bad"][1]
    want = scipy_stats.binomtest(int(np.sum(a & ~b)), int(np.sum(a ^ b)), 0.5).pvalue
    assert f"seed=1: {int(np.sum(a & ~b))} vs {int(np.sum(~a & b))} rows, p = {want:.3g}" in line
    delta = float(np.mean([right["good"][s].mean() - right["bad"][s].mean() for s in base]))
    assert f"best - runner-up = {delta:+.4f}" in line

    results = {(lr, s): float(v.mean()) for lr in ("good", "twin") for s, v in right[lr].items()}
    root = _sweep(tmp_path / "near", results, lambda lr, s: _rows(right[lr][s]))
    compare([str(root)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Per example"))
    assert "(not significant at 0.05)" in line


def test_paired_bootstrap_interval_and_p():
    rng = np.random.default_rng(1)
    a, b = (rng.random(2000) < 0.8).astype(float), (rng.random(2000) < 0.8).astype(float)
    delta, (low, high), p = stats.paired_bootstrap(a, b)
    assert delta == pytest.approx(a.mean() - b.mean()) and low < delta < high and p > 0.05
    delta, (low, high), p = stats.paired_bootstrap(a, a * (rng.random(2000) < 0.9))  # b wrong on 10% more
    assert low > 0 and p < 0.001


def test_plot_error_bars_are_the_confidence_intervals(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    drawn = []
    real = Axes.errorbar
    monkeypatch.setattr(
        Axes,
        "errorbar",
        lambda self, x, y, yerr=None, **kw: drawn.append((x, y, yerr)) or real(self, x, y, yerr=yerr, **kw),
    )
    values = {"1e-5": [0.70, 0.74, 0.72], "1e-4": [0.80, 0.84, 0.83]}
    root = _sweep(tmp_path / "sweep", {(lr, s): v for lr, vals in values.items() for s, v in zip(SEEDS, vals)})
    compare([str(root)])
    [(x, y, yerr)] = drawn
    assert x == [1e-5, 1e-4]
    for lr, half in zip(("1e-5", "1e-4"), yerr):
        low, high = scipy_stats.t.interval(0.95, 2, loc=np.mean(values[lr]), scale=scipy_stats.sem(values[lr]))
        assert half == pytest.approx((high - low) / 2)
