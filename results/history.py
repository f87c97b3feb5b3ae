"""One metric across stored runs, ordered by commit date (asv's view of a benchmark).

Each run gives one point per series: per micro case (``ChanSync-2``) or per bench case
label (strategy/connections/...; repeats pooled). A point is the median of the run's
samples for that metric with its 95% confidence interval when there are enough samples.
For bench runs the samples are the repeats (whole-run figures, as the report shows them).
A regress result gives two run-like entries (:func:`results.regress.side_runs`), its base
and its head, each at its own commit; their metrics include ``instructions`` per op.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from results import compare, regress, stats

SPECS = {"micro": compare.MICRO_METRICS, "bench": compare.BENCH_METRICS,
         regress.KIND: regress.METRICS}
METRICS = {kind: [m.name for m in specs] for kind, specs in SPECS.items()}
ALIASES = {"micro": compare.METRIC_ALIASES, "bench": compare.METRIC_ALIASES,
           regress.KIND: regress.ALIASES}


@dataclass(frozen=True)
class Point:
    run_id: str
    sha: str
    when: dt.datetime
    summary: stats.Summary


def resolve_metric(kind: str, metric: str | None) -> str:
    """The canonical metric name; ValueError naming the choices if unknown."""
    if metric is None:
        return METRICS[kind][0]
    name = ALIASES[kind].get(metric, metric)
    if name not in METRICS[kind]:
        raise ValueError(f"no {kind} metric {metric!r} (choose from: {', '.join(METRICS[kind])})")
    return name


def commit_time(run: dict) -> dt.datetime:
    """When the run's commit was made (its creation time if git did not say), in UTC."""
    for text in (run.get("git", {}).get("commit_time"), run.get("created")):
        if text:
            try:
                t = dt.datetime.fromisoformat(text)
            except ValueError:
                continue
            return t.astimezone(dt.UTC) if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return dt.datetime.min.replace(tzinfo=dt.UTC)


def order_runs(runs: list[dict]) -> list[dict]:
    """Runs by commit date, then by creation time (several runs of one commit)."""
    return sorted(runs, key=lambda r: (commit_time(r), r.get("created", ""), r["id"]))


def _run_samples(run: dict, metric: str, strategy: str | None) -> dict[str, list[float]]:
    if run["kind"] == regress.KIND:
        return regress.samples(run["doc"], run["side"])[metric]
    if run["kind"] == "micro":
        return compare.micro_samples(run)[metric]
    groups, _ = compare.group_bench(run)
    out = {}
    for label, cases in groups.items():
        if strategy and cases[0]["key"]["strategy"] != strategy:
            continue
        values = compare.per_repeat(cases, compare.REPEAT_GETTERS[metric])
        if values:
            out[label] = values
    return out


def collect(
    runs: list[dict],
    kind: str,
    metric: str,
    strategy: str | None = None,
    case_re: str | None = None,
) -> tuple[list[dict], dict[str, list[Point]]]:
    """(runs of ``kind`` in commit order, series label -> points in that order)."""
    rx = re.compile(case_re) if case_re else None
    ordered = order_runs([r for r in runs if r["kind"] == kind])
    series: dict[str, list[Point]] = {}
    for run in ordered:
        for label, values in _run_samples(run, metric, strategy).items():
            if rx and not rx.search(label):
                continue
            series.setdefault(label, []).append(
                Point(run["id"], run["git"]["sha"], commit_time(run), stats.summarize(values))
            )
    return ordered, series


def table(ordered: list[dict], series: dict[str, list[Point]], per_table: int = 6) -> str:
    """Rows = runs in commit order (date, sha, id); columns = series medians.

    A run taken on a tree with uncommitted changes shows its sha with ``-dirty``.
    """
    labels = list(series)
    out = []
    for start in range(0, max(1, len(labels)), per_table):
        chunk = labels[start:start + per_table]
        by_run = {lb: {p.run_id: p for p in series[lb]} for lb in chunk}
        rows = []
        for run in ordered:
            sha = run["git"]["sha"][:10] + ("-dirty" if run["git"].get("dirty") else "")
            row = [commit_time(run).strftime("%Y-%m-%d %H:%M"), sha, run["id"]]
            for lb in chunk:
                p = by_run[lb].get(run["id"])
                row.append(compare.fmt_value(p.summary.median) if p else "")
            rows.append(row)
        out.append(tabulate(rows, headers=["commit date (UTC)", "git", "run", *chunk],
                            disable_numparse=True))
    return "\n\n".join(out)


def plot(series: dict[str, list[Point]], title: str, ylabel: str, path: Path) -> Path:
    """A PNG with one line per series over the commit order, CI as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_order: list[tuple[dt.datetime, str, str]] = sorted(
        {(p.when, p.run_id, p.sha) for pts in series.values() for p in pts}
    )
    xpos = {rid: i for i, (_, rid, _) in enumerate(run_order)}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.8 * len(run_order)), 4.5))
    lows = []
    for label, pts in series.items():
        xs = [xpos[p.run_id] for p in pts]
        ys = [p.summary.median for p in pts]
        err = [[max(0.0, p.summary.median - (p.summary.lo if p.summary.lo is not None
                                              else p.summary.median)) for p in pts],
               [max(0.0, (p.summary.hi if p.summary.hi is not None else p.summary.median)
                    - p.summary.median) for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
        lows += [y for y in ys if y > 0]
    if lows and max(lows) / min(lows) > 50:
        ax.set_yscale("log")
    ax.set_xticks(range(len(run_order)))
    ax.set_xticklabels([f"{sha[:7]}\n{when:%m-%d %H:%M}" for when, _, sha in run_order],
                       fontsize=8)
    ax.set_xlabel("commit (ordered by commit date)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ncol = 1 if len(series) <= 12 else 2
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=ncol)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def unit_of(kind: str, metric: str) -> str:
    spec = next(s for s in SPECS[kind] if s.name == metric)
    return f"{metric} ({spec.unit}, {spec.better} is better)"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "metric"
