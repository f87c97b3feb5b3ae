"""Bench run → tables: cases grouped per strategy × load, repeats reduced to their median.

A *group* is every repeat of one case key minus ``repeat``. Its figures are medians over
the repeats whose status is "ok"; a group with no ok repeat shows the first failure
instead. :func:`run_summary` adds what only makes sense across connection counts: the
fitted memory slope (bytes per connection) per strategy.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

import numpy as np
from tabulate import tabulate

MiB = 1 << 20


def group_key(key: dict) -> tuple:
    return (
        key["strategy"], key["connections"], key["mode"], key["conn_mode"],
        key["rate"] if key["rate"] is not None else -1.0, key["size"],
    )  # fmt: skip


def groups(run: dict) -> list[tuple[tuple, list[dict]]]:
    """``[(group key, [cases…])]``: open loop first, then by connections, then strategy in
    the run's order."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    order = {s: i for i, s in enumerate(run["config"].get("strategies", []))}
    for case in run["cases"]:
        out[group_key(case["key"])].append(case)
    return sorted(
        out.items(),
        key=lambda kv: (kv[0][2] != "open", kv[0][3], kv[0][5], kv[0][1], kv[0][4],
                        order.get(kv[0][0], 99), kv[0][0]),
    )  # fmt: skip


def _med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def total_errors(lg: dict) -> int:
    return sum(lg["errors"].values()) + sum(lg["connect_errors"].values())


def aggregate(cases: list[dict]) -> dict:
    """The median figures of a group's ok cases (``None`` where there are none)."""
    ok = [c for c in cases if c["status"] == "ok"]
    lat = {
        f"{p}_{kind}": _med([c["loadgen"]["latency_us"][kind][p] / 1000 for c in ok])
        for p in ("p50", "p99", "p99.9")
        for kind in ("corrected", "uncorrected")
    }
    metric = ok[0]["mem_per_conn"]["metric"] if ok else "rss"
    return {
        "ok": len(ok),
        "n": len(cases),
        "failure": next((c["status"] for c in cases if c["status"] != "ok"), None),
        "rate": _med([c["loadgen"]["rate"]["achieved"] for c in ok]),
        "target": cases[0]["key"]["rate"],
        **lat,
        "errors": _med([total_errors(c["loadgen"]) for c in ok]),
        "starved": _med([c["loadgen"]["fairness"]["starved"] for c in ok]),
        "saturated": sum(1 for c in ok if c["loadgen"]["saturated"]),
        "cpu_1k": _med([c["cpu_s_per_1k_msgs"] for c in ok]),
        "cpu_pct": _med([c["server"]["cpu_percent"] for c in ok]),
        "rss": _med([c["server"]["load"]["rss"] for c in ok]),
        "pss": _med([c["server"]["load"]["pss"] for c in ok]),
        "peak_rss": _med([c["server"]["peak"]["rss"] for c in ok]),
        "mem_conn": _med([c["mem_per_conn"]["bytes"] for c in ok]),
        "mem_metric": metric,
        "threads": _med([c["server"]["peak"]["threads"] for c in ok]),
        "procs": _med([c["server"]["peak"]["procs"] for c in ok]),
        "fds": _med([c["server"]["peak"]["fds"] for c in ok]),
        "overflows": _med([c["netstat"]["ListenOverflows"] for c in ok]),
        "mem_drop": _med([c["machine_mem"]["drop"] for c in ok]),
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
        if c["status"] != "ok" or c["key"]["conn_mode"] != "persistent":
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
    """The ``summary`` block of a bench run: counts, skipped strategies, memory slopes."""
    counts = {"ok": 0, "failed": 0, "aborted": 0}
    for c in run["cases"]:
        counts[c["status"].split(":")[0]] += 1
    return {"counts": counts, "skipped": skipped or {}, "mem_slope": mem_slopes(run)}


def _f(v, fmt: str = "{:,.0f}", scale: float = 1.0) -> str:
    return "-" if v is None else fmt.format(v / scale)


def _load(gk: tuple) -> str:
    strategy, n, mode, conn_mode, rate, size = gk
    load = "closed" if mode == "closed" else f"{rate:,.0f}/s"
    if conn_mode != "persistent":
        load += " per-msg"
    return load if size == 64 else f"{load} {size}B"


def _lat(a: dict, p: str) -> str:
    c, u = a[f"{p}_corrected"], a[f"{p}_uncorrected"]
    return "-" if c is None else f"{c:.2f} / {u:.2f}"


def tables(run: dict, fmt: str = "simple") -> dict[str, str]:
    """The report's tables as text, keyed by title (``fmt`` is a tabulate format)."""
    perf, cost, problems = [], [], []
    for gk, cases in groups(run):
        a = aggregate(cases)
        head = [gk[0], f"{gk[1]:,}", _load(gk), f"{a['ok']}/{a['n']}"]
        if a["ok"] == 0:
            perf.append(head + ["-"] * 7)
            cost.append(head + ["-"] * 9)
        else:
            perf.append(head + [
                _f(a["rate"]), _lat(a, "p50"), _lat(a, "p99"), _lat(a, "p99.9"),
                _f(a["errors"]), _f(a["starved"]),
                "-" if not a["saturated"] else f"yes {a['saturated']}/{a['ok']}",
            ])  # fmt: skip
            cost.append(head + [
                _f(a["cpu_1k"], "{:.3f}"), _f(a["cpu_pct"], "{:.0f}%"),
                _f(a["rss"], "{:,.1f}", MiB), _f(a["mem_conn"], "{:,.1f}", 1024) + (
                    f" ({a['mem_metric']})" if a["mem_conn"] is not None else ""),
                _f(a["threads"]), _f(a["procs"]), _f(a["fds"]),
                _f(a["overflows"]), _f(a["mem_drop"], "{:,.0f}", MiB),
            ])  # fmt: skip
        for c in cases:
            if c["status"] != "ok" or c["defects"]:
                k = c["key"]
                what = c["status"] if c["status"] != "ok" else "; ".join(c["defects"])
                problems.append([k["strategy"], f"{k['connections']:,}", _load(gk),
                                 k["repeat"] + 1, what])
    head = ["strategy", "conns", "load", "ok"]
    out = {
        "Throughput and latency (median of repeats; latency ms, corrected / uncorrected)":
            tabulate(perf, head + ["msg/s", "p50", "p99", "p99.9", "errors", "starved",
                                   "saturated"], tablefmt=fmt, disable_numparse=True),
        "Server cost (median of repeats; memory under load, peak threads/processes/fds)":
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
    skipped = (run.get("summary") or {}).get("skipped") or {}
    for s, why in skipped.items():
        lines.append(f"skipped {s}: {why}")
    return lines
