"""Configurations: runs with the same swept values except the keys aggregated over (the seed; the fold of
a cross-validation), their statistics over those runs, the best one and its tests against the others."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from tunelab.sweeps import stats
from tunelab.sweeps.runs import Run


@dataclass
class Group:
    key: tuple
    runs: list[Run]
    values: list[float]
    pairs: list[tuple] = field(default_factory=list)  # per value: the run's --over values (seed): pairs runs

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0 if self.values else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def ci95(self) -> tuple[float, float]:
        return stats.confidence_interval(self.values)

    def by_pair(self) -> dict:
        """{seed (the --over values): metric}; runs that share one (no seed override) cannot be paired."""
        if len(set(self.pairs)) < len(self.pairs):
            return {("run", i): v for i, v in enumerate(self.values)}
        return dict(zip(self.pairs, self.values))


def aggregate(runs: list[Run], keys: list[str], metric: str, over: tuple[str, ...] = ("seed",)) -> list[Group]:
    """Runs with the same swept values except the keys in ``over`` (the seed; the fold of a
    cross-validation) form one configuration."""
    config_keys = [k for k in keys if k not in over]
    groups: dict[tuple, Group] = {}
    for run in runs:
        key = tuple(run.overrides.get(k, "") for k in config_keys)
        group = groups.setdefault(key, Group(key, [], []))
        group.runs.append(run)
        if run.status == "completed" and metric in run.metrics:
            group.values.append(run.metrics[metric])
            group.pairs.append(tuple(run.overrides.get(k, "") for k in over))
    return list(groups.values())


def best_group(groups: list[Group], mode: str) -> Group | None:
    scored = [g for g in groups if g.values]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda g: g.mean)


def significance(groups: list[Group], best: Group | None, mode: str) -> tuple[dict, Group | None]:
    """({id(group): Comparison against the best, Holm-corrected over all}, the runner-up)."""
    ranked = sorted((g for g in groups if g.values and g is not best), key=lambda g: g.mean, reverse=mode == "max")
    if best is None or not ranked:
        return {}, None
    results = stats.compare_to_best(best.by_pair(), [g.by_pair() for g in ranked])
    return {id(g): r for g, r in zip(ranked, results)}, ranked[0]


def config_label(group: Group, keys: list[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, group.key)) or "the configuration"
