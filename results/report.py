"""Bench run → tables: cases grouped per strategy × load, repeats reduced to their median.

A *group* is every repeat of one case (:attr:`CaseKey.group`). Its verdict is the one its
repeats share (else each with its count); its figures are medians over the repeats that
did not fail; a group with no such repeat shows the failure instead. :func:`run_summary`
adds what only makes sense across connection counts: the fitted memory slope (bytes per
connection) per strategy.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

import numpy as np
from tabulate import tabulate

from results.cases import CaseKey
from results.verdict import VERDICTS

MiB = 1 << 20


def groups(run: dict) -> list[tuple[CaseKey, list[dict]]]:
    """``[(group key, [cases…])]`` in report order (see :meth:`CaseKey.sort_key`)."""
    out: dict[CaseKey, list[dict]] = defaultdict(list)
    order = {s: i for i, s in enumerate(_strategies(run))}
    for case in run["cases"]:
        out[CaseKey.from_dict(case["key"]).group].append(case)
    return sorted(out.items(), key=lambda kv: kv[0].sort_key(order))


def _strategies(run: dict) -> list[str]:
    s = run["config"].get("strategies", [])
    return [x for x in s if isinstance(x, str)] if isinstance(s, list) else []


def _med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def total_errors(lg: dict) -> int:
    return sum(lg["errors"].values()) + sum(lg["connect_errors"].values())


def _server_cpu(c: dict) -> dict:
    return (c.get("cpu") or {}).get("server") or {}


KIND_MARK = {"reference": " (ref)", "external": " (ext)"}


def strategy_label(run: dict, strategy: str) -> str:
    """The strategy's name, marked `` (ref)`` for a reference (the yardstick, not one of the
    four models) and `` (ext)`` for an external server run by name."""
    return strategy + KIND_MARK.get((run.get("strategy_kinds") or {}).get(strategy), "")


def verdict_text(cases: list[dict]) -> str:
    """The group's verdict: the one all repeats share, else each with its count."""
    kinds = Counter(c["verdict"]["kind"] for c in cases)
    if len(kinds) == 1:
        return next(iter(kinds))
    return ", ".join(f"{k} {n}/{len(cases)}" for k, n in kinds.most_common())


def aggregate(cases: list[dict]) -> dict:
    """The median figures of a group's measured cases (``None`` where there are none).

    Measured: not failed. CPU figures leave out the cases whose measurement broke an
    invariant (``cpu_flagged`` counts them); a throughput any repeat of which was
    loadgen-bound is a lower bound (``rate_lower_bound``).
    """
    ok = [c for c in cases if c["verdict"]["kind"] != "failed" and c["loadgen"] is not None]
    true_cpu = [c for c in ok if not c["measurement_defects"]]
    lat = {
        f"{p}_{kind}": _med([c["loadgen"]["latency_us"][kind][p] / 1000 for c in ok])
        for p in ("p50", "p99", "p99.9")
        for kind in ("corrected", "uncorrected")
    }
    metric = ok[0]["mem_per_conn"]["metric"] if ok else "rss"
    return {
        "ok": len(ok),
        "n": len(cases),
        "verdict": verdict_text(cases),
        "failure": next((c["verdict"]["reason"] for c in cases
                         if c["verdict"]["kind"] == "failed"), None),
        "rate": _med([c["loadgen"]["rate"]["achieved"] for c in ok]),
        "rate_lower_bound": any(c["verdict"]["kind"] == "loadgen-bound" for c in ok),
        "target": cases[0]["key"]["rate"],
        **lat,
        "errors": _med([total_errors(c["loadgen"]) for c in ok]),
        "starved": _med([c["loadgen"]["fairness"]["starved"] for c in ok]),
        "cpu_1k": _med([c["cpu_s_per_1k_msgs"] for c in true_cpu]),
        "cpu_pct": _med([_server_cpu(c).get("percent") for c in true_cpu]),
        "cpu_limit": _med([_server_cpu(c).get("limit_cores") for c in ok]),
        "cpu_flagged": len(ok) - len(true_cpu),
        "rss": _med([c["server"]["load"]["rss"] for c in ok]),
        "pss": _med([c["server"]["load"]["pss"] for c in ok]),
        "peak_rss": _med([c["server"]["peak"]["rss"] for c in ok]),
        "mem_conn": _med([c["mem_per_conn"]["bytes"] for c in ok]),
        "mem_metric": metric,
        "threads": _med([c["server"]["peak"]["threads"] for c in ok]),
        "procs": _med([c["server"]["peak"]["procs"] for c in ok]),
        "fds": _med([c["server"]["peak"]["fds"] for c in ok]),
        "overflows": _med([c["netstat"]["ListenOverflows"] for c in ok]),
        "mem_drop": _med([c["machine_mem"]["drop"] for c in ok if c["machine_mem"]]),
        "defects": sum(len(c["defects"]) for c in cases),
    }


def mem_slopes(run: dict) -> dict:
    """Per strategy: memory under load vs connections fitted to a line (numpy.polyfit).

    Uses the ok persistent-connection cases, each at the number of connections the server
    actually held (``mem_per_conn.connections``, else the target); PSS for strategies
    measured by PSS (fork), RSS otherwise. Two distinct counts are needed for a slope.
    """
    points: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
    for c in run["cases"]:
        if c["verdict"]["kind"] == "failed" or c["key"]["conn_mode"] != "persistent":
            continue
        if c["server"] is None:
            continue
        metric = c["mem_per_conn"]["metric"]
        value = c["server"]["load"].get(metric)
        held = c["mem_per_conn"].get("connections") or c["key"]["connections"]
        if value is not None:
            points[c["key"]["strategy"]].append((held, value, metric))
    out = {}
    for strategy, pts in points.items():
        xs = [p[0] for p in pts]
        if len(set(xs)) < 2:
            continue
        slope, intercept = np.polyfit(xs, [p[1] for p in pts], 1)
        metrics = sorted({p[2] for p in pts})
        out[strategy] = {
            "bytes_per_conn": round(float(slope), 1),
            "intercept": round(float(intercept), 1),
            "metric": "/".join(metrics),
            "points": len(pts),
        }
    return out


def run_summary(run: dict, skipped: dict | None = None) -> dict:
    """The ``summary`` block of a bench run: cases per verdict, skipped strategies, memory
    slopes."""
    counts = dict.fromkeys(VERDICTS, 0)
    for c in run["cases"]:
        counts[c["verdict"]["kind"]] += 1
    return {"counts": counts, "skipped": skipped or {}, "mem_slope": mem_slopes(run)}


def _f(v, fmt: str = "{:,.0f}", scale: float = 1.0) -> str:
    return "-" if v is None else fmt.format(v / scale)


def _lat(a: dict, p: str) -> str:
    c, u = a[f"{p}_corrected"], a[f"{p}_uncorrected"]
    return "-" if c is None else f"{c:.2f} / {u:.2f}"


FLAG = "†"  # a figure some repeats of which broke a measurement invariant (left out)


def tables(run: dict, fmt: str = "simple") -> dict[str, str]:
    """The report's tables as text, keyed by title (``fmt`` is a tabulate format)."""
    perf, cost, problems = [], [], []
    for gk, cases in groups(run):
        a = aggregate(cases)
        head = [strategy_label(run, gk.strategy), f"{gk.connections:,}", gk.load, a["verdict"]]
        if a["ok"] == 0:
            perf.append(head + ["-"] * 6)
            cost.append(head + ["-"] * 9)
        else:
            rate = _f(a["rate"])
            perf.append(head + [
                f"≥ {rate}" if a["rate_lower_bound"] else rate,
                _lat(a, "p50"), _lat(a, "p99"), _lat(a, "p99.9"),
                _f(a["errors"]), _f(a["starved"]),
            ])  # fmt: skip
            flag = FLAG if a["cpu_flagged"] else ""
            cost.append(head + [
                _f(a["cpu_1k"], "{:.3f}") + flag,
                (_f(a["cpu_pct"], "{:.0f}%") + flag + f" of {a['cpu_limit']:g}")
                if a["cpu_limit"] else "-",
                _f(a["rss"], "{:,.1f}", MiB), _f(a["mem_conn"], "{:,.1f}", 1024) + (
                    f" ({a['mem_metric']})" if a["mem_conn"] is not None else ""),
                _f(a["threads"]), _f(a["procs"]), _f(a["fds"]),
                _f(a["overflows"]), _f(a["mem_drop"], "{:,.0f}", MiB),
            ])  # fmt: skip
        for c in cases:
            k = CaseKey.from_dict(c["key"])
            whats = []
            if c["verdict"]["kind"] == "failed":
                whats.append(f"failed: {c['verdict']['reason']}")
            whats += [f"measurement defect: {d}" for d in c["measurement_defects"]]
            whats += c["defects"]
            if whats:
                problems.append([strategy_label(run, k.strategy), f"{k.connections:,}",
                                 k.load, k.repeat + 1, "; ".join(whats)])
    head = ["strategy", "conns", "load", "verdict"]
    out = {
        "Throughput and latency (median of repeats; latency ms, corrected / uncorrected; "
        "≥: the loadgen was the bound, the server may do more)":
            tabulate(perf, head + ["msg/s", "p50", "p99", "p99.9", "errors", "starved"],
                     tablefmt=fmt, disable_numparse=True),
        "Server cost (median of repeats over the measure window; cpu: % of one core, of the "
        f"cores it may use; {FLAG}: repeats with a measurement defect left out)":
            tabulate(cost, head + ["cpu s/1k msg", "cpu", "RSS MiB", "mem/conn KiB",
                                   "threads", "procs", "fds", "listen overflows",
                                   "avail drop MiB"], tablefmt=fmt, disable_numparse=True),
    }  # fmt: skip
    slopes = (run.get("summary") or {}).get("mem_slope") or mem_slopes(run)
    if slopes:
        rows = [[s, f"{v['bytes_per_conn'] / 1024:,.2f}", v["metric"], v["points"]]
                for s, v in slopes.items()]
        out["Memory slope across connection counts (numpy.polyfit)"] = tabulate(
            rows, ["strategy", "KiB/conn", "metric", "cases"], tablefmt=fmt,
            disable_numparse=True,
        )
    if run.get("capacity"):
        out["Capacity: the highest rate held under the SLO (knee)"] = capacity_table(run, fmt)
    if problems:
        out["Failed, aborted and defective cases"] = tabulate(
            problems, ["strategy", "conns", "load", "repeat", "what"], tablefmt=fmt,
            disable_numparse=True,
        )
    return out


def header(run: dict) -> list[str]:
    """A few lines saying what was measured where."""
    m, g = run["machine"], run["git"]
    dirty = " (dirty)" if g.get("dirty") else ""
    when = f"finished {run['finished']}" if run.get("finished") else "unfinished"
    lines = [
        f"run {run['id']} (started {run['created']}, {when})",
        f"git {g['sha'][:12]}{dirty}; {m['cpu_model']}, {m['cores_logical']} cores "
        f"(affinity {m['affinity']}), {m['memory_total'] / 2**30:.1f} GiB, "
        f"kernel {m['kernel']}, {m['python']}, fd limit {m['fd_limit']['soft']}",
    ]
    cfg = run["config"]
    pins = next((c["pin"] for c in run["cases"] if c.get("pin")), None)
    where = (f"server on CPUs {pins['server']}, loadgen on {pins['loadgen']}" if pins
             else "server and loadgen unpinned")
    quota = cfg.get("server_cpu_quota")
    lines.append(
        f"{where}{f', server CPU quota {quota:g} core(s)' if quota else ''}; goroutine "
        f"procs {cfg.get('procs') or 'default'}; {cfg.get('duration')} s measured after "
        f"{cfg.get('warmup')} s warm-up; held = >= {100 * cfg.get('slo_held', 0.99):g}% of "
        f"the target rate with corrected p99 <= {cfg.get('slo_p99_ms', 10.0):g} ms")
    kinds = set((run.get("strategy_kinds") or {}).values())
    if kinds & set(KIND_MARK):
        lines.append("(ref): a reference server, the yardstick beside the four models; "
                     "(ext): an external server run by name")
    skipped = (run.get("summary") or {}).get("skipped") or {}
    for s, why in skipped.items():
        lines.append(f"skipped {s}: {why}")
    return lines


def capacity_table(run: dict, fmt: str = "simple") -> str:
    """Knee rate per strategy × connections: ``N`` (server-bound above it), ``≥ N``
    (loadgen-bound: the server held every rate the loadgen could offer), ``< N`` (not even
    the lowest rate tried was held), ``?`` (the loadgen was the bound from the first step)."""
    slo = run["config"]
    rows = []
    conns = sorted({k["connections"] for k in run["capacity"]})
    strategies = list(dict.fromkeys(k["strategy"] for k in run["capacity"]))
    by = {(k["strategy"], k["connections"]): k for k in run["capacity"]}
    for s in strategies:
        row = [s]
        for n in conns:
            k = by.get((s, n))
            row.append("-" if k is None else knee_text(k))
        rows.append(row)
    title = (f"SLO: >= {100 * slo.get('slo_held', 0.99):g}% of the offered rate, corrected p99 "
             f"<= {slo.get('slo_p99_ms', 10.0):g} ms")
    quota = slo.get("server_cpu_quota")
    if quota:
        title += f"; server CPU quota {quota:g} core(s)"
    return title + "\n" + tabulate(rows, ["strategy"] + [f"{n:,} conns (msg/s)" for n in conns],
                                   tablefmt=fmt, disable_numparse=True)


def knee_text(k: dict) -> str:
    if k["knee"] is None:
        if not k["steps"]:
            return "-"
        lowest = min(s["rate"] for s in k["steps"])
        if k["bound"] == "loadgen":
            return f"? (loadgen-bound from {lowest:,.0f})"
        return f"< {lowest:,.0f}"
    if k["bound"] == "loadgen":
        return f"≥ {k['knee']:,.0f} (loadgen-bound)"
    if k["bound"] == "none":
        return f"≥ {k['knee']:,.0f} (search ended)"
    return f"{k['knee']:,.0f}"
