"""bench/throughput.py's report: medians, ratios against the targets, the machine, and the Markdown."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from throughput_run import ROOT, SAME


def median_of(runs: list[dict], key: str, sub: str | None = None):
    values = [(r.get(sub) or {}).get(key) if sub else r.get(key) for r in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict]]) -> dict:
    keys = (
        "samples_per_s",
        "real_tokens_per_s",
        "padded_tokens_per_s",
        "pad_fraction",
        "first_step_s",
        "train_start_s",
        "peak_rss_mb",
        "measured_real_tokens",
    )
    out = {}
    for arm, rs in runs.items():
        out[arm] = {k: median_of(rs, k) for k in keys}
        out[arm]["runs"] = len(rs)
        out[arm]["attn_implementation"] = rs[0].get("attn_implementation")
        out[arm]["threads"] = rs[0].get("threads")
        if any("eval" in r for r in rs):
            out[arm]["test_accuracy"] = median_of(rs, "accuracy", "eval")
            out[arm]["eval_samples_per_s"] = statistics.median(r["eval"]["rows"] / r["eval"]["seconds"] for r in rs)
            if "rows_in_input_order" in rs[0]["eval"]:
                out[arm]["predict_rows_in_input_order"] = all(r["eval"]["rows_in_input_order"] for r in rs)
    return out


def same_batches(runs: dict[str, list[dict]]) -> bool | None:
    """Did the *_same arms step on exactly the same batches (rows, real and padded tokens) in every round?"""
    arms = [runs[a] for a in SAME if a in runs]
    if len(arms) < 2:
        return None
    return all(len({json.dumps(r["batches"][: len(r["step_end"])]) for r in rnd}) == 1 for rnd in zip(*arms))


def paired_step_difference(runs: dict[str, list[dict]], a: str, b: str, warmup: int) -> dict | None:
    """a's minus b's duration of the same timed step on the same batch, over every round (ms): the
    per-step cost of one framework over the other, with the machine's slow spells mostly paired out."""
    if a not in runs or b not in runs:
        return None

    def durations(run: dict) -> list[float]:  # each timed step, from the end of the one before
        ends = run["step_end"][warmup - 1 :]
        return [y - x for x, y in zip(ends, ends[1:])]

    diffs = [(x - y) * 1000 for ra, rb in zip(runs[a], runs[b]) for x, y in zip(durations(ra), durations(rb))]
    return (
        {"median_ms": statistics.median(diffs), "mean_ms": statistics.mean(diffs), "steps": len(diffs)}
        if diffs
        else None
    )


def round_ratios(runs: dict[str, list[dict]], a: str, b: str) -> list[float]:
    """a / b samples/s within each interleaved round: a paired view of the noise behind the ratio of medians."""
    if a not in runs or b not in runs:
        return []
    return [ra["samples_per_s"] / rb["samples_per_s"] for ra, rb in zip(runs[a], runs[b])]


def targets(summary: dict, extra: dict, runs: dict | None = None) -> list[dict]:
    def ratio(a, b, key="samples_per_s"):
        return summary[a][key] / summary[b][key] if a in summary and b in summary else None

    rows = [
        ("tunelab_same / hf_same, samples/s (identical batches)", ratio("tunelab_same", "hf_same"), ">=", 1.0),
        ("tunelab_same / raw_same, samples/s (identical batches)", ratio("tunelab_same", "raw_same"), ">=", 0.97),
        ("tunelab_default / hf_default, samples/s", ratio("tunelab_default", "hf_default"), ">=", 1.8),
        ("tunelab_default / hf_grouped, samples/s", ratio("tunelab_default", "hf_grouped"), ">=", 1.0),
    ]
    for other in ("hf_default", "hf_grouped"):  # within 1 point: tunelab may be better, not worse by > 0.01
        if "tunelab_default" in summary and other in summary:
            diff = summary["tunelab_default"]["test_accuracy"] - summary[other]["test_accuracy"]
            rows.append((f"test accuracy tunelab_default - {other} (median of seeds)", diff, ">=", -0.01))
    rows += [
        ("`tunelab --help`, s", extra.get("help_s"), "<", 1.0),
        ("rows tokenized by a second set-up of the same data", extra.get("retokenized_rows"), "==", 0),
        (
            "tunelab spawn -> first step / bare `import lightning, transformers`",
            extra.get("first_step_over_import"),
            "<=",
            1.5,
        ),
        ("tunelab predict / best pipeline(), samples/s", extra.get("predict_over_pipeline"), ">=", 1.0),
    ]
    check = {">=": lambda m, g: m >= g, "<=": lambda m, g: m <= g, "<": lambda m, g: m < g, "==": lambda m, g: m == g}
    out = [
        {"target": t, "measured": m, "goal": f"{op} {g}", "met": None if m is None else bool(check[op](m, g))}
        for t, m, op, g in rows
    ]
    for row, (a, b) in zip(
        out,
        [
            ("tunelab_same", "hf_same"),
            ("tunelab_same", "raw_same"),
            ("tunelab_default", "hf_default"),
            ("tunelab_default", "hf_grouped"),
        ],
    ):
        row["per_round"] = round_ratios(runs or {}, a, b)
    return out


def machine(threads: int) -> dict:
    from importlib.metadata import version

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        if Path("/proc/cpuinfo").exists()
        else "unknown"
    )
    mem = (
        next(
            (
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0,
        )
        if Path("/proc/meminfo").exists()
        else 0
    )
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem / 2**20, 1),
        "threads": threads,
        "python": sys.version.split()[0],
        "tunelab_commit": git.stdout.strip() or None,
        "versions": {
            p: version(p)
            for p in ("torch", "transformers", "lightning", "tokenizers", "datasets", "accelerate", "hydra-core")
        },
    }


# ---- the report
def fmt(value, digits=2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        f"# Throughput: tunelab vs transformers.Trainer vs raw PyTorch ({report['name']})",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['threads']} torch threads; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; tunelab {m['tunelab_commit']}; "
        f"bytecode {m['bytecode']}.",
        "",
        f"MiniLM on MR, batch {s['batch_size']}, max length 128, AdamW lr {s['lr']}, seeds {s['seeds']}, "
        f"{s['repeats']} interleaved round(s); *_same arms: {s['warmup']} warm-up + {s['steps']} measured steps; "
        f"default arms: {s['budget']} steps (timed after step {s.get('default_warmup', s['warmup'])}) then test. Load average {report['load_average']['start']} at the start, "
        f"{report['load_average']['end']} at the end{' (quick mode: plumbing, not numbers)' if s['quick'] else ''}.",
        "",
    ]
    shares = {
        f"{arm} r{r['round'] + 1}": r["others_cpu_share"]
        for arm, rs in report.get("runs", {}).items()
        for r in rs
        if r.get("others_cpu_share") is not None
    }
    if shares:
        worst = max(shares, key=shares.get)
        lines += [
            f"Other processes' CPU while an arm ran (the machine's busy time minus the arm's own, share of all "
            f"cores): median {statistics.median(shares.values()) * 100:.1f}%, worst {shares[worst] * 100:.1f}% "
            f"({worst}).",
            "",
        ]
        if shares[worst] > 0.05 and not s["quick"]:
            lines += [
                "**Other jobs took CPU during some arms.** With more threads than idle cores, torch steps wait "
                "at OpenMP barriers and those rounds are noise; rerun on a quiet machine (or with "
                "`--threads 1`).",
                "",
            ]
    lines += ["| target | measured | goal | met | per round |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else ("✓" if t["met"] else "✗")
        per_round = ", ".join(f"{x:.3f}" for x in t.get("per_round") or [])
        lines.append(f"| {t['target']} | {fmt(t['measured'], 3)} | {t['goal']} | {met} | {per_round} |")
    lines += [
        "",
        "| arm | samples/s | real tok/s | padded tok/s | padding | timed real tokens | spawn -> train start s "
        "| spawn -> 1st step s | peak RSS MB | test acc | eval samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, v in report["summary"].items():
        lines.append(
            f"| {arm} | {fmt(v['samples_per_s'], 1)} | {fmt(v['real_tokens_per_s'], 0)} | "
            f"{fmt(v['padded_tokens_per_s'], 0)} | {fmt(v['pad_fraction'] * 100, 0)}% | {fmt(v.get('measured_real_tokens'), 0)} | "
            f"{fmt(v['train_start_s'], 1)} | "
            f"{fmt(v['first_step_s'], 1)} | {fmt(v['peak_rss_mb'], 0)} | {fmt(v.get('test_accuracy'), 3)} | "
            f"{fmt(v.get('eval_samples_per_s'), 1)} |"
        )
    for name, overrides in s.get("levers", {}).items():
        base = report["summary"].get(s["lever_on"])
        lever = report["summary"][f"{s['lever_on']}+{name}"]
        if base:
            lines.append(
                f"\nLever `{name}` ({' '.join(overrides)}): {fmt(lever['samples_per_s'] / base['samples_per_s'], 3)}x "
                f"{s['lever_on']} samples/s"
                + (
                    f", test accuracy {fmt(lever['test_accuracy'], 3)} vs {fmt(base['test_accuracy'], 3)}."
                    if "test_accuracy" in base
                    else "."
                )
            )
    st, c = report["startup"], report["cache"]
    paired = [
        (b, paired_step_difference(report["runs"], "tunelab_same", b, s["warmup"])) for b in ("hf_same", "raw_same")
    ]
    paired = [(b, d) for b, d in paired if d]
    if paired:
        lines += [
            "",
            "Paired per-step cost on identical batches (tunelab_same's step minus the other's, same step, "
            "every round): "
            + "; ".join(
                f"vs {b} median {d['median_ms']:+.1f} ms, mean {d['mean_ms']:+.1f} ms over {d['steps']} steps"
                for b, d in paired
            )
            + ".",
        ]
    lines += [
        "",
        f"Identical batches in the *_same arms: {fmt(report['same_batches'])}. "
        f"`Trainer.predict()` rows in input order under group_by_length: "
        f"{fmt(report['summary'].get('hf_grouped', {}).get('predict_rows_in_input_order'))}.",
        "",
        f"Start-up: `tunelab --help` {fmt(st['help_s'], 3)} s; bare `import lightning, transformers` "
        f"{fmt(st['bare_import_s'], 2)} s; tunelab spawn -> train start {fmt(st['tunelab_train_start_s'], 2)} s "
        f"({fmt(st['tunelab_train_start_s'] / st['bare_import_s'] if st['tunelab_train_start_s'] else None, 2)}x the "
        f"bare import), spawn -> first step {fmt(st['tunelab_first_step_s'], 2)} s; the raw loop's spawn -> first "
        f"step {fmt(st['raw_first_step_s'], 2)} s ({fmt(st['raw_first_step_s'] / st['bare_import_s'] if st['raw_first_step_s'] else None, 2)}x "
        "the bare import).",
        "",
        f"Data cache: first set-up {fmt(c['first']['seconds'], 2)} s ({c['first']['rows_tokenized']} rows tokenized), "
        f"second {fmt(c['second']['seconds'], 2)} s ({c['second']['rows_tokenized']} rows tokenized, cache hit: "
        f"{fmt(c['second']['hit'])}).",
        "",
    ]
    p = report["predict"]
    if p:
        lines += [
            f"Prediction, {p['rows']} MR test sentences ({p['threads']} threads), samples/s: tunelab predict_rows "
            f"(batch {p['batch_size']}, length-sorted) {fmt(p['samples_per_s']['tunelab'], 1)}; pipeline() batch "
            f"{p['batch_size']} {fmt(p['samples_per_s']['pipeline_same_batch'], 1)}; pipeline() default batch (1) "
            f"{fmt(p['samples_per_s']['pipeline_default_batch'], 1)}. Same labels as pipeline() in input order: "
            f"{fmt(p['labels_match_pipeline'])} (max score difference {p['max_score_diff']:.1e}).",
            "",
        ]
    return "\n".join(lines)


def write_report(report: dict, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    if report.get("complete"):
        (out / f"{name}.md").write_text(markdown(report))
