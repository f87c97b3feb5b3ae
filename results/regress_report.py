"""Verdicts on a regress result, rendered as text tables or Go benchmark lines.

One table per metric, one row per case: old (base) and new (head), delta, verdict.
Instruction counts are judged by :mod:`results.verdicts` against :func:`count_threshold`
(no test: at procs 1 the micro counts and the echo server's ping-pong count repeat to
parts per million and agree to 0.02% across heap layouts; at procs 2 each side is counted
several times, and a change must also exceed twice their spread). ``time/op``,
``vs asyncio`` and ``cpu/msg`` are judged by benchstat's rule
(:func:`results.stats.compare`: Mann-Whitney U at ``alpha`` and a minimum effect, default 5%).

The gating metric is the document's ``config.gate``: ``instructions``, or ``vs asyncio``
where valgrind was missing. :attr:`Report.regressions` are its regressed rows and the
cases that were measured on base but failed on head; the other tables are secondary and
never gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tabulate import tabulate

from results import compare, regress, stats, verdicts

FAILED_IN_HEAD = "failed in head"
IO_CASES = ("NetpollRoundTrip",)
IO_THRESHOLD_PCT = 3.0
PARALLEL_THRESHOLD_PCT = 2.0


def count_threshold(case: str, cfg: dict, threshold: float) -> float:
    """The instruction delta (%) beyond which case label ``case`` (``NAME-PROCS``) changed.

    ``threshold``, or the larger of it and:

    * ``config.parallel_threshold`` (default :data:`PARALLEL_THRESHOLD_PCT`) at procs 2 and
      more: the Ms race for the Gs, and with valgrind's fair scheduling most such counts
      still move by up to 0.5% between runs of identical code, MutexContended and
      NetpollRoundTrip by 1.5%, Gosched by 10% (the spread rule of
      :mod:`results.verdicts` keeps those from gating on noise);
    * ``config.io_threshold`` (default :data:`IO_THRESHOLD_PCT`) for :data:`IO_CASES`: an M
      that waits in epoll polls the network and runs timers as the wall clock decides,
      which under valgrind moves NetpollRoundTrip's count by ±1.5% between runs.
    """
    name, _, procs = case.rpartition("-")
    limit = threshold
    if procs.isdigit() and int(procs) >= 2:
        limit = max(limit, cfg.get("parallel_threshold", PARALLEL_THRESHOLD_PCT))
    if name in IO_CASES:
        limit = max(limit, cfg.get("io_threshold", IO_THRESHOLD_PCT))
    return limit


@dataclass
class Row:
    """One case of one metric; ``comparison`` is None when a side has no value."""

    case: str
    old: list[float]
    new: list[float]
    comparison: verdicts.CountComparison | stats.Comparison | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return self.comparison.verdict if self.comparison else self.note

    @property
    def delta_pct(self) -> float | None:
        return self.comparison.delta_pct if self.comparison else None


@dataclass
class Table:
    spec: compare.MetricSpec
    gating: bool
    rows: list[Row]


@dataclass
class Report:
    doc: dict
    tables: list[Table]
    threshold: float
    time_threshold: float
    alpha: float
    warnings: list[str] = field(default_factory=list)

    @property
    def gate(self) -> str:
        return self.doc["config"]["gate"]

    @property
    def regressions(self) -> list[Row]:
        """Gating rows that regressed or failed on head: any of them means exit 1."""
        return [r for t in self.tables if t.gating for r in t.rows
                if r.verdict in (stats.REGRESSED, FAILED_IN_HEAD)]

    @property
    def secondary_regressions(self) -> list[tuple[str, Row]]:
        return [(t.spec.name, r) for t in self.tables if not t.gating for r in t.rows
                if r.verdict == stats.REGRESSED]


def _failed(doc: dict, side: str) -> set[str]:
    return {regress.label(c) for c in doc["cases"] if c[side]["errors"]}


def judge(
    doc: dict,
    threshold: float | None = None,
    time_threshold: float | None = None,
    alpha: float | None = None,
) -> Report:
    """The verdicts on ``doc``; None for a setting means the one it was measured with."""
    cfg = doc["config"]
    threshold = cfg["threshold"] if threshold is None else threshold
    time_threshold = cfg["time_threshold"] if time_threshold is None else time_threshold
    alpha = cfg["alpha"] if alpha is None else alpha
    old, new = regress.samples(doc, "base"), regress.samples(doc, "head")
    failed_head = _failed(doc, "head")
    tables = []
    for spec in regress.METRICS:
        o, n = old[spec.name], new[spec.name]
        rows = []
        for case in dict.fromkeys([*o, *n]):
            if case in o and case in n:
                if spec is regress.INSTRUCTIONS:
                    c = verdicts.compare_counts(o[case], n[case],
                                                count_threshold(case, cfg, threshold))
                else:
                    c = stats.compare(o[case], n[case], spec.better, alpha, time_threshold)
                rows.append(Row(case, o[case], n[case], c))
            elif case in o:
                why = FAILED_IN_HEAD if case in failed_head else "only in base"
                rows.append(Row(case, o[case], [], None, why))
            else:
                rows.append(Row(case, [], n[case], None, "only in head"))
        if rows:
            tables.append(Table(spec, spec.name == cfg["gate"], rows))
    warnings = [f"{side} {regress.label(c)}: {c[side]['errors'][-1]}"
                for c in doc["cases"] for side in regress.SIDES if c[side]["errors"]]
    if cfg["base"]["baseline"]:
        warnings.append(f"base time values are baseline {cfg['base']['baseline']}'s, not "
                        "measured in this sitting: time/op moves with the load between them")
    return Report(doc, tables, threshold, time_threshold, alpha, warnings)


def _median(xs: list[float]) -> str:
    if not xs:
        return "—"
    return compare.fmt_value(stats.summarize(xs).median)


def _pct2(d: float | None) -> str:
    return "—" if d is None else f"{d:+.2f}%"


def _rows(t: Table) -> list[list[str]]:
    """Table rows: counts show their spread, time metrics their p-value."""
    rows = []
    for r in t.rows:
        c = r.comparison
        if c is None:
            rows.append([r.case, _median(r.old), _median(r.new), "", "", "", r.note])
        elif isinstance(c, verdicts.CountComparison):
            rows.append([r.case, compare.fmt_value(c.old), compare.fmt_value(c.new),
                         _pct2(c.delta_pct), f"{c.spread_pct:.3f}%",
                         f"{len(r.old)}+{len(r.new)}",
                         c.verdict])
        else:
            rows.append([r.case, compare.fmt_side(c.old), compare.fmt_side(c.new),
                         compare.fmt_pct(c.delta_pct), "" if c.p is None else f"{c.p:.3f}",
                         f"{c.old.n}+{c.new.n}", c.verdict])
    return rows


def _side_line(doc: dict) -> str:
    base, head = doc["config"]["base"], doc["git"]
    what = f"baseline {base['baseline']}" if base["baseline"] else base["ref"]
    changes = " + uncommitted changes" if head.get("dirty") else ""
    return f"base: {what} = {base['sha'][:10]}    head: {head['sha'][:10]}{changes}"


def _count_rule(report: Report) -> str:
    cfg, t = report.doc["config"], report.threshold
    parallel = count_threshold("X-2", cfg, t)
    io = count_threshold(f"{IO_CASES[0]}-1", cfg, t)
    return (f"instruction delta beyond ±{t:g}% (procs ≥ 2: {parallel:g}%; "
            f"{', '.join(IO_CASES)}: {io:g}%) and beyond {verdicts.SPREAD_FACTOR:g}× the "
            "spread of repeated counts")


def render_text(report: Report) -> str:
    """The tables (the gating one first, marked), warnings, and a closing verdict line."""
    lines = [f"warning: {w}" for w in report.warnings]
    lines.append(_side_line(report.doc))
    gate = next((t.spec for t in report.tables if t.gating), None)
    how = (_count_rule(report) if report.gate == regress.INSTRUCTIONS.name else
           f"Mann-Whitney U, alpha={report.alpha:g}, minimum effect {report.time_threshold:g}%")
    lines.append(f"gate: {report.gate} ({how}); secondary tables: Mann-Whitney U, "
                 f"alpha={report.alpha:g}, minimum effect {report.time_threshold:g}%")
    for t in sorted(report.tables, key=lambda t: not t.gating):
        mark = "  <- GATE" if t.gating else ""
        lines += ["", f"{t.spec.name} ({t.spec.unit}, {t.spec.better} is better){mark}"]
        spread = "spread" if t.spec is regress.INSTRUCTIONS else "p"
        lines.append(tabulate(_rows(t), headers=["case", "old", "new", "delta", spread, "n",
                                                 "verdict"], disable_numparse=True))
    lines.append("")
    reg = report.regressions
    if gate is None:
        lines.append(f"no {report.gate} measured: nothing to gate on")
    elif reg:
        lines.append(f"REGRESSED on the gate ({report.gate}): " + ", ".join(
            f"{r.case} {_pct2(r.delta_pct)}" if r.delta_pct is not None
            else f"{r.case} ({r.note})" for r in reg))
    else:
        lines.append(f"no regression on the gate ({report.gate})")
    sec = report.secondary_regressions
    if sec:
        lines.append("secondary (not gating): " + ", ".join(
            f"{r.case} {m} {compare.fmt_pct(r.delta_pct)}" for m, r in sec))
    return "\n".join(lines)


def render_gobench(report: Report) -> str:
    """Both sides in Go benchmark format, a ``run:`` block each, for ``benchstat -col run``.

    One line per sample and metric; the iteration count is the case's loop count (1 for
    the echo case).
    """
    doc = report.doc
    specs = [t.spec for t in report.tables]
    lines = [f"Unit {s.gobench_unit} better={s.better}" for s in specs]
    lines += ["goos: linux", "pkg: c10k-bench/goruntime"]
    cpu = doc.get("machine", {}).get("cpu_model")
    loops = {regress.label(c): max(1, c["loops"]) for c in doc["cases"]}
    for run in regress.side_runs(doc):
        if cpu:
            lines.append(f"cpu: {cpu}")
        lines.append(f"run: {run['side']}-{run['git']['sha'][:10]}")
        lines.append(f"commit: {run['git']['sha']}")
        side = regress.samples(doc, run["side"])
        for spec in specs:
            for case, values in side[spec.name].items():
                for v in values:
                    x = v * spec.gobench_scale
                    if math.isfinite(x):
                        lines.append(f"{compare.gobench_name('micro', case)}\t{loops[case]}\t"
                                     f"{x:.6g} {spec.gobench_unit}")
    return "\n".join(lines)
