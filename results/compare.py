"""Old run vs new run: a per-metric table with a benchstat verdict, for micro and bench runs.

Samples, per kind:

* micro: each case ``Name-procs`` gives two metrics. ``time/op`` is the case's ``values``
  (µs/op, one per measured value, several per fresh process). ``vs asyncio`` is the ratio
  of each goruntime value to the asyncio value measured right after it in the same process:
  both halves see the same machine load, so the ratio stays put on a noisy machine while
  the absolute times drift.
* bench: cases are grouped over ``repeat`` (the key without it is the case label). Only
  cases that did not fail contribute. For ``rate`` (achieved msgs/s), ``p50`` and ``p99``
  (corrected latency, µs) the samples are the repeats when both sides have at least
  :data:`MIN_REPEATS` of them: repeats are independent server starts, the honest unit of
  replication. With fewer repeats the samples are the loadgen's ≤1 s ``intervals``
  (``rate``, and ``p50_us``/``p99_us`` of the interval's corrected latencies, skipped for
  an interval without a single echo) pooled over the repeats, so a single-repeat run can
  still be judged; intervals of one run are autocorrelated, so their p-values are
  optimistic, and the table says which source it used. ``cpu/1k msgs`` (server CPU seconds
  per 1,000 echoes) and ``mem/conn`` (bytes) exist once per repeat, so they need
  repeats to get a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from tabulate import tabulate

from results import stats

MIN_REPEATS = 4

MACHINE_KEYS = ("hostname", "cpu_model", "cores_logical", "affinity", "kernel", "python")

# Run config keys that say how a run was executed, not what it measured.
_CONFIG_IGNORED = {"out", "out_dir", "filter", "progress", "quiet", "verbose"}


class CompareError(ValueError):
    """The two runs cannot be compared; ``str(e)`` is one line for the user."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    better: str  # "lower" | "higher"
    gobench_unit: str
    gobench_scale: float = 1.0


MICRO_METRICS = (
    MetricSpec("time/op", "µs/op", "lower", "ns/op", 1000.0),
    MetricSpec("vs asyncio", "× asyncio", "lower", "x-asyncio"),
)
BENCH_METRICS = (
    MetricSpec("rate", "msgs/s", "higher", "msgs/s"),
    MetricSpec("p50", "µs", "lower", "p50-us"),
    MetricSpec("p99", "µs", "lower", "p99-us"),
    MetricSpec("cpu/1k msgs", "cpu-s", "lower", "cpu-s/1k-msgs"),
    MetricSpec("mem/conn", "bytes", "lower", "B/conn"),
)


@dataclass
class Row:
    case: str
    comparison: stats.Comparison | None  # None when the case is missing on one side
    note: str = ""  # "only in old", "failed in new", the sample source...


@dataclass
class MetricTable:
    spec: MetricSpec
    rows: list[Row]
    geomean_old: float | None = None
    geomean_new: float | None = None

    @property
    def geomean_delta_pct(self) -> float | None:
        if self.geomean_old and self.geomean_new is not None:
            return (self.geomean_new - self.geomean_old) / self.geomean_old * 100.0
        return None


@dataclass
class Report:
    kind: str
    old: dict
    new: dict
    tables: list[MetricTable]
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[tuple[str, str]]:
        """(metric, case) for every regressed row, and every case that failed only in new."""
        out = []
        for t in self.tables:
            for r in t.rows:
                failed = r.note == "failed in new"
                if failed or (r.comparison and r.comparison.verdict == stats.REGRESSED):
                    out.append((t.spec.name, r.case))
        return out


# ---- samples -------------------------------------------------------------------------


def micro_label(case: dict) -> str:
    """Go's benchmark naming: ``ChanSync-2`` is ChanSync at GOMAXPROCS=2."""
    return f"{case['name']}-{case['procs']}"


def micro_samples(run: dict) -> dict[str, dict[str, list[float]]]:
    """metric name -> case label -> values, for a micro run."""
    out: dict[str, dict[str, list[float]]] = {m.name: {} for m in MICRO_METRICS}
    for case in run["cases"]:
        label = micro_label(case)
        values = [float(v) for v in case.get("values") or []]
        if values:
            out["time/op"][label] = values
        av = case.get("asyncio_values")
        if values and av and len(av) == len(values) and all(a > 0 for a in av):
            out["vs asyncio"][label] = [v / a for v, a in zip(values, av, strict=True)]
    return out


def micro_failed(run: dict) -> set[str]:
    """Labels of the micro cases whose workers failed (no value at all)."""
    return {micro_label(c) for c in run["cases"] if not c.get("values")}


def bench_label(key: dict) -> str:
    rate = "max" if key.get("rate") is None else f"{key['rate']:g}"
    return (
        f"{key['strategy']}/c={key['connections']}/rate={rate}/size={key['size']}"
        f"/{key['mode']}/{key['conn_mode']}"
    )


def group_bench(run: dict) -> tuple[dict[str, list[dict]], set[str]]:
    """label -> ok cases (one per repeat); and the labels that have only failed cases."""
    ok: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for case in run["cases"]:
        label = bench_label(case["key"])
        seen.add(label)
        if case.get("verdict", {}).get("kind") != "failed" and case.get("loadgen"):
            ok.setdefault(label, []).append(case)
    return ok, seen - set(ok)


def per_repeat(cases: list[dict], get: Callable[[dict], float | None]) -> list[float]:
    out = []
    for c in cases:
        try:
            v = get(c)
        except (KeyError, TypeError):
            v = None
        if v is not None and math.isfinite(v):
            out.append(float(v))
    return out


def _per_interval(cases: list[dict], field_name: str) -> list[float]:
    out = []
    for c in cases:
        for iv in c["loadgen"].get("intervals") or []:
            if field_name != "rate" and iv.get("messages") == 0:
                continue  # no echo in that interval: its percentiles are not measurements
            v = iv.get(field_name)
            if isinstance(v, int | float) and math.isfinite(v):
                out.append(float(v))
    return out


REPEAT_GETTERS: dict[str, Callable[[dict], float | None]] = {
    "rate": lambda c: c["loadgen"]["rate"]["achieved"],
    "p50": lambda c: c["loadgen"]["latency_us"]["corrected"]["p50"],
    "p99": lambda c: c["loadgen"]["latency_us"]["corrected"]["p99"],
    "cpu/1k msgs": lambda c: c.get("cpu_s_per_1k_msgs"),
    "mem/conn": lambda c: (c.get("mem_per_conn") or {}).get("bytes"),
}
_INTERVAL_FIELDS = {"rate": "rate", "p50": "p50_us", "p99": "p99_us"}


def bench_pair_samples(
    old_cases: list[dict], new_cases: list[dict], metric: str
) -> tuple[list[float], list[float], str]:
    """The old and new samples of one bench metric for one case, and their source.

    Source is "repeats" or "intervals" (see the module docstring for the rule).
    """
    get = REPEAT_GETTERS[metric]
    old_r, new_r = per_repeat(old_cases, get), per_repeat(new_cases, get)
    field_name = _INTERVAL_FIELDS.get(metric)
    if field_name is None or min(len(old_r), len(new_r)) >= MIN_REPEATS:
        return old_r, new_r, "repeats"
    old_i, new_i = _per_interval(old_cases, field_name), _per_interval(new_cases, field_name)
    if old_i and new_i:
        return old_i, new_i, "intervals"
    return old_r, new_r, "repeats"


# ---- comparing -----------------------------------------------------------------------


def _differences(a: dict, b: dict, keys) -> list[str]:
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def run_warnings(old: dict, new: dict) -> list[str]:
    """Human warnings when the runs were taken on different machines or configs."""
    out = []
    diff = _differences(old.get("machine", {}), new.get("machine", {}), MACHINE_KEYS)
    if diff:
        out.append("runs come from different machines (" + "; ".join(diff) + ")")
    keys = sorted((set(old.get("config", {})) | set(new.get("config", {}))) - _CONFIG_IGNORED)
    diff = _differences(old.get("config", {}), new.get("config", {}), keys)
    if diff:
        out.append("runs have different configs (" + "; ".join(diff) + ")")
    for side, run in (("old", old), ("new", new)):
        flaky = [micro_label(c) for c in run["cases"]
                 if run["kind"] == "micro" and c.get("errors") and c.get("values")]
        if flaky:
            out.append(f"{side} run {run['id']}: some worker processes failed in "
                       f"{', '.join(flaky)} (fewer values)")
        if run.get("git", {}).get("dirty"):
            out.append(f"{side} run {run['id']} was taken on a dirty tree (uncommitted changes)")
    return out


def _table(
    spec: MetricSpec,
    pairs: dict[str, tuple[list[float], list[float], str]],
    missing: dict[str, str],
    alpha: float,
    threshold: float,
) -> MetricTable:
    """``missing``: case -> why it has no comparison ("failed in new", "only in old"...)."""
    rows = []
    for label, (o, n, note) in pairs.items():
        rows.append(Row(label, stats.compare(o, n, spec.better, alpha, threshold), note))
    rows += [Row(label, None, why) for label, why in missing.items()]
    olds, news = [], []
    for r in rows:
        c = r.comparison
        if c and c.old.n and c.new.n and c.old.median > 0 and c.new.median > 0:
            olds.append(c.old.median)
            news.append(c.new.median)
    return MetricTable(spec, rows, stats.geomean(olds), stats.geomean(news))


def _missing(old_ok, new_ok, old_failed: set[str], new_failed: set[str]) -> dict[str, str]:
    """Why each case measured on only one side is missing on the other."""
    out = {}
    for k in old_ok:
        if k not in new_ok:
            out[k] = "failed in new" if k in new_failed else "only in old"
    for k in new_ok:
        if k not in old_ok:
            out[k] = "failed in old" if k in old_failed else "only in new"
    return out


METRIC_ALIASES = {"time": "time/op", "ratio": "vs asyncio", "cpu": "cpu/1k msgs",
                  "mem": "mem/conn"}


def compare_runs(
    old: dict,
    new: dict,
    alpha: float = 0.05,
    threshold: float = 5.0,
    metrics: list[str] | None = None,
) -> Report:
    """Compare two loaded runs of the same kind; :class:`CompareError` if kinds differ.

    ``metrics`` restricts the tables (and so the verdicts that count) to those metric
    names or aliases (time, ratio, cpu, mem); None means every metric of the kind.
    """
    if old["kind"] != new["kind"]:
        raise CompareError(
            f"cannot compare a {old['kind']} run ({old['id']}) with a {new['kind']} run "
            f"({new['id']}); give two runs of the same kind"
        )
    specs = MICRO_METRICS if old["kind"] == "micro" else BENCH_METRICS
    if metrics:
        names = [m.name for m in specs]
        wanted = [METRIC_ALIASES.get(m, m) for m in metrics]
        unknown = [m for m, w in zip(metrics, wanted, strict=True) if w not in names]
        if unknown:
            raise CompareError(f"no {old['kind']} metric {unknown[0]!r} "
                               f"(choose from: {', '.join(names)})")
        specs = tuple(m for m in specs if m.name in wanted)
    if not 0 < alpha < 1:
        raise CompareError(f"--alpha must be between 0 and 1, not {alpha}")
    if threshold < 0:
        raise CompareError(f"--threshold must be >= 0, not {threshold}")
    warnings = run_warnings(old, new)
    tables = []
    if old["kind"] == "micro":
        so, sn = micro_samples(old), micro_samples(new)
        fo, fn = micro_failed(old), micro_failed(new)
        for spec in specs:
            o, n = so[spec.name], sn[spec.name]
            pairs = {k: (o[k], n[k], "") for k in o if k in n}
            missing = _missing(o, n, fo, fn)
            if pairs or missing:
                tables.append(_table(spec, pairs, missing, alpha, threshold))
    else:
        go, failed_old = group_bench(old)
        gn, failed_new = group_bench(new)
        for spec in specs:
            pairs = {}
            for label in go:
                if label in gn:
                    o, n, src = bench_pair_samples(go[label], gn[label], spec.name)
                    if o or n:
                        pairs[label] = (o, n, src)
            missing = _missing(go, gn, failed_old, failed_new)
            tables.append(_table(spec, pairs, missing, alpha, threshold))
    if not any(r.comparison for t in tables for r in t.rows):
        warnings.append("the runs have no case in common: nothing to compare")
    return Report(old["kind"], old, new, tables, warnings)


# ---- rendering -----------------------------------------------------------------------


def fmt_value(v: float | None) -> str:
    """Four significant digits, no exponent for the magnitudes benchmarks produce."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    decimals = max(0, 3 - mag)
    return f"{v:,.{decimals}f}"


def fmt_side(s: stats.Summary) -> str:
    """``median ± half-width%`` of a sample (``∞`` when too few values for an interval)."""
    if not s.n:
        return "—"
    sp = s.spread_pct
    spread = "∞" if sp is None or math.isinf(sp) else f"{sp:.0f}%"
    return f"{fmt_value(s.median)} ± {spread}"


def fmt_pct(d: float | None) -> str:
    """A signed percentage with one decimal, ``—`` for None."""
    return "—" if d is None else f"{d:+.1f}%"


def render_text(report: Report, alpha: float, threshold: float) -> str:
    """The tables, benchstat style, with warnings and a closing summary line."""
    old, new = report.old, report.new
    lines = []
    for w in report.warnings:
        lines.append(f"warning: {w}")
    lines.append(
        f"old: {old['id']}  (git {old['git']['sha'][:10]})    "
        f"new: {new['id']}  (git {new['git']['sha'][:10]})"
    )
    lines.append(
        f"median ± half-width of its {stats.CONFIDENCE:.0%} confidence interval; "
        f"Mann-Whitney U, alpha={alpha:g}, minimum effect {threshold:g}%"
    )
    need = stats.min_samples(alpha)
    for t in report.tables:
        rows = []
        for r in t.rows:
            c = r.comparison
            if c is None:
                rows.append([r.case, "—", "—", "", "", "", r.note])
                continue
            verdict = c.verdict
            if verdict == stats.TOO_FEW:
                verdict = f"{stats.TOO_FEW} (need >= {need} per side)"
            p = "" if c.p is None else f"{c.p:.3f}"
            ns = f"{c.old.n}+{c.new.n}"
            note = f" [{r.note}]" if r.note and r.note != "repeats" else ""
            rows.append([r.case, fmt_side(c.old), fmt_side(c.new), fmt_pct(c.delta_pct), p, ns,
                         verdict + note])
        rows.append(["geomean", fmt_value(t.geomean_old), fmt_value(t.geomean_new),
                     fmt_pct(t.geomean_delta_pct), "", "", ""])
        title = f"{t.spec.name} ({t.spec.unit}, {t.spec.better} is better)"
        lines.append("")
        lines.append(title)
        lines.append(tabulate(rows, headers=["case", "old", "new", "delta", "p", "n", "verdict"],
                              disable_numparse=True))
    reg = report.regressions
    lines.append("")
    if reg:
        lines.append(f"REGRESSED: {len(reg)} metric(s): "
                     + ", ".join(f"{case} {metric}" for metric, case in reg))
    else:
        lines.append("no regression")
    return "\n".join(lines)


def gobench_name(kind: str, case: str) -> str:
    """The Go benchmark name of a case label: ``BenchmarkChanSync-2``, ``BenchmarkEcho/...``."""
    if kind == "micro":
        return f"Benchmark{case}"
    strategy, _, rest = case.partition("/")
    return f"BenchmarkEcho/strategy={strategy}/{rest}"


def render_gobench(report: Report) -> str:
    """Both runs as Go benchmark format, one block per run, tagged with a ``run:`` key.

    ``benchstat -col run FILE`` then compares them. Every sample is one line with iteration
    count 1 (micro: the loop count), and ``Unit`` lines say which way is better.
    """
    specs = [t.spec for t in report.tables]
    lines = []
    for spec in specs:
        lines.append(f"Unit {spec.gobench_unit} better={spec.better}")
    lines.append("goos: linux")
    lines.append("pkg: c10k-bench/goruntime" if report.kind == "micro" else "pkg: c10k-bench")
    for side, run in (("old", report.old), ("new", report.new)):
        cpu = run.get("machine", {}).get("cpu_model")
        if cpu:
            lines.append(f"cpu: {cpu}")
        lines.append(f"run: {side}-{run['id']}")
        lines.append(f"commit: {run['git']['sha']}")
        if report.kind == "micro":
            loops = {micro_label(c): c.get("loops", 1) for c in run["cases"]}
            samples = micro_samples(run)
            for spec in specs:
                for label, values in samples[spec.name].items():
                    for v in values:
                        lines.append(f"{gobench_name('micro', label)}\t{loops[label]}\t"
                                     f"{v * spec.gobench_scale:.6g} {spec.gobench_unit}")
        else:
            groups, _ = group_bench(run)
            for spec in specs:
                for label, cases in groups.items():
                    values, _, _ = bench_pair_samples(cases, cases, spec.name)
                    for v in values:
                        lines.append(f"{gobench_name('bench', label)}\t1\t"
                                     f"{v * spec.gobench_scale:.6g} {spec.gobench_unit}")
    return "\n".join(lines)
