"""Is the best configuration really better, or is it seed noise? The statistics behind ``tunelab compare``.

Across seeds (one number per run):
  - a 95% confidence interval of each configuration's mean (Student t: mean +- t.ppf(0.975, n-1) * s / sqrt(n));
  - a p-value of each configuration against the best one: a paired t-test (``scipy.stats.ttest_rel``) on
    the runs the two share a seed with (same seed: same initialisation and data order, so the seed's own
    effect cancels), Welch's t-test (``ttest_ind(equal_var=False)``) otherwise; two-sided;
  - Holm's step-down correction of those p-values for the number of comparisons made.

Across test examples (one row per example, runs' ``test_predictions.jsonl``):
  - a paired bootstrap of the difference in mean per-example score (rows resampled with numpy);
  - McNemar's exact test on the discordant pairs of two runs (``scipy.stats.binomtest``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05


def confidence_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; (nan, nan) with fewer than 2 values (no spread to measure)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(np.mean(values)), float(np.std(values, ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sem
    return mean - half, mean + half


@dataclass
class Comparison:
    test: str  # "paired t" / "Welch t" / "" (not enough runs)
    n_pairs: int  # runs paired by seed (paired test), else 0
    p: float  # raw two-sided p-value
    p_holm: float = math.nan


def _t_pvalue(result, diff_spread: float, diff_mean: float) -> float:
    """scipy returns nan when there is no spread at all; then the answer is plain: equal or not."""
    if not math.isnan(float(result.pvalue)):
        return float(result.pvalue)
    return 1.0 if diff_spread == 0 and diff_mean == 0 else 0.0


def versus(best: dict, other: dict) -> Comparison:
    """Two configurations' runs as ``{pairing key (the seed, or the --over values): metric}``."""
    from scipy import stats

    shared = sorted(set(best) & set(other))
    if len(shared) >= 2:  # paired on the shared seeds; runs without a partner are left out of the test
        a, b = [best[k] for k in shared], [other[k] for k in shared]
        diff = np.subtract(a, b)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "precision loss": equal differences; handled below
            result = stats.ttest_rel(a, b)
        return Comparison("paired t", len(shared), _t_pvalue(result, float(np.ptp(diff)), float(diff.mean())))
    a, b = list(best.values()), list(other.values())
    if len(a) < 2 or len(b) < 2:
        return Comparison("", 0, math.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    spread = float(np.std(a) + np.std(b))
    return Comparison("Welch t", 0, _t_pvalue(result, spread, float(np.mean(a) - np.mean(b))))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (statsmodels' multipletests(method='holm') is not a dependency; it is
    this): the i-th smallest of m p-values times (m - i), made monotone, capped at 1. nan stays nan."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted, running = [math.nan] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, p * (len(order) - rank)))
        adjusted[i] = running
    return adjusted


def compare_to_best(best: dict, others: list[dict]) -> list[Comparison]:
    """Each other configuration against the best, Holm-corrected over all of them."""
    results = [versus(best, other) for other in others]
    for result, adjusted in zip(results, holm([r.p for r in results])):
        result.p_holm = adjusted
    return results


# ---- per example
@dataclass
class ExampleTest:
    rows: int
    delta: float  # mean per-example score of the best minus the runner-up's
    ci95: tuple[float, float]
    p_bootstrap: float
    mcnemar: list[tuple[str, int, int, float]]  # (pairing key, best right only, runner-up right only, p)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple:
    """(delta, 95% interval, two-sided p) of mean(a - b) over rows resampled with replacement.

    The p-value is that of the shifted bootstrap distribution (Efron & Tibshirani, ch. 16): how often a
    resample's delta lies as far from the observed one as the observed one lies from zero."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    delta = float(diff.mean())
    low, high = np.percentile(means, [2.5, 97.5])
    if delta == 0:
        return delta, (float(low), float(high)), 1.0
    p = float(np.mean(np.abs(means - delta) >= abs(delta)))
    return delta, (float(low), float(high)), max(p, 1 / resamples)  # never 0 from a finite resample


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar: among rows where exactly one run is right, is 'a right' a fair coin?"""
    from scipy import stats

    a_only = int(np.sum(a_correct & ~b_correct))
    b_only = int(np.sum(~a_correct & b_correct))
    p = float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    return a_only, b_only, p


def per_example(best_runs: dict, other_runs: dict, higher_is_better: bool = True) -> ExampleTest | None:
    """Per-example tests between two configurations on the test rows they share.

    ``*_runs``: ``{pairing key: {row id: (score, correct or None)}}``. The bootstrap compares each row's
    score averaged over the configuration's runs (so every seed counts, and rows stay the unit resampled);
    McNemar needs one right/wrong per row, so it is run per pair of runs sharing a seed (the first runs if
    none share one)."""
    rows = (
        set.intersection(*(set(r) for r in [*best_runs.values(), *other_runs.values()]))
        if best_runs and other_runs
        else set()
    )
    if not rows:
        return None
    rows = sorted(rows, key=str)

    def mean_score(runs):
        return np.mean([[run[r][0] for r in rows] for run in runs.values()], axis=0)

    a, b = mean_score(best_runs), mean_score(other_runs)
    delta, ci, p = paired_bootstrap(a, b) if higher_is_better else paired_bootstrap(-a, -b)
    tests = []
    pairs = [(k, k) for k in sorted(set(best_runs) & set(other_runs), key=str)] or [
        (next(iter(best_runs)), next(iter(other_runs)))
    ]
    for ka, kb in pairs:
        ra, rb = best_runs[ka], other_runs[kb]
        if any(ra[r][1] is None or rb[r][1] is None for r in rows):
            break  # no right/wrong per row (a regression): McNemar does not apply
        key = str(ka) if ka == kb else f"{ka} vs {kb}"
        tests.append(
            (key, *mcnemar(np.array([ra[r][1] for r in rows], bool), np.array([rb[r][1] for r in rows], bool)))
        )
    return ExampleTest(len(rows), delta, ci, p, tests)


def verdict(best_label: str, runner_label: str, comparison: Comparison, alpha: float = ALPHA) -> str:
    """One sentence: is the best significantly better than the runner-up?"""
    if not comparison.test:
        return (
            f"Not enough runs to test whether {best_label} beats the runner-up {runner_label}: "
            "each needs at least 2 seeds (rerun with --rerun-top 2 --seeds K)."
        )
    significant = comparison.p_holm < alpha
    return (
        f"The best ({best_label}) is {'' if significant else 'NOT '}significantly better than the runner-up "
        f"({runner_label}) at alpha {alpha}: {comparison.test}-test"
        f"{f' on {comparison.n_pairs} shared seeds' if comparison.n_pairs else ''}, "
        f"Holm-corrected p = {comparison.p_holm:.3g}."
    )


def describe_examples(test: ExampleTest | None, measure: str, alpha: float = ALPHA) -> str:
    """The per-example evidence in one sentence (or why there is none)."""
    if test is None:
        return (
            "No per-example test: the best and the runner-up need test_predictions.jsonl on shared test rows "
            "(written by every run that tests, of every built-in head)."
        )
    low, high = test.ci95
    mcnemar = "; ".join(f"{key}: {a} vs {b} rows, p = {p:.3g}" for key, a, b, p in test.mcnemar)
    return (
        f"Per example ({test.rows} shared test rows, each row's {measure} averaged over a configuration's runs; "
        "test-set noise only, these runs held fixed): "
        f"best - runner-up = {test.delta:+.4f} (95% CI {low:+.4f} to {high:+.4f}), paired bootstrap p = "
        f"{test.p_bootstrap:.3g} ({'' if test.p_bootstrap < alpha else 'not '}significant at {alpha})"
        + (f"; exact McNemar (rows only one run got right) {mcnemar}." if mcnemar else ".")
    )
