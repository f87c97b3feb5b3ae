"""The result dict of a run, built from the workers' final reports (pure, no gevent).

Keys are those ``results/SCHEMA.md`` lists under "loadgen". `bytes` counts the payload
bytes of verified echoes one way (message size × messages). `window` is the measure phase
on ``time.monotonic()``'s clock, which every process of one boot shares, so a runner on the
same host can read its own counters at exactly those instants. `limit` says whether the
loadgen itself was at its limit (a worker's CPU, or timed sends leaving late): then what it
measured is partly its own cost, and a throughput is only a lower bound.
`lost_workers` names the workers lost during the case (the figures are the survivors',
over a window ended early) and `late_workers` those refused because they joined after the
case had started; see ``loadgen.crew``.
"""

from __future__ import annotations

from loadgen import histogram
from loadgen.recorder import CONNECT_KINDS, ERROR_KINDS, INTERVAL_S

CPU_LIMIT = 90.0
# Open loop: a worker that, woken by its timer, sends more than this late at the median
# is not keeping its schedule (its own CPU is the bottleneck, or is taken by others), so
# the latency it measures is partly its own.
LATE_LIMIT_US = 2000
# ... and one whose timed sends leave this late at p99 puts its own stalls into the tail
# latency it reports.
LATE_P99_LIMIT_US = 5000


def _window(finals: list[dict], master: dict | None) -> dict | None:
    """The measure phase on the monotonic clock of the master's boot.

    From the windows of the workers that share the master's clock (same boot id): the
    earliest start to the latest end. With none (all remote), the master's own instants.
    """
    boot = master.get("boot_id") if master else None
    local = [f["window"] for f in finals if f.get("window") and f.get("boot_id") == boot]
    if local:
        return {"start": min(w[0] for w in local), "end": max(w[1] for w in local),
                "boot_id": boot, "source": "workers"}
    if master:
        return {"start": master["start"], "end": master["end"], "boot_id": boot,
                "source": "master"}
    return None


def _worker(f: dict) -> dict:
    """One worker's line: where its load came from and what it measured."""
    errors = sum(f["errors"].values()) + sum(f["connect_errors"].values())
    return {
        "index": f["index"], "host": f.get("host"), "address": f.get("address", ""),
        "pid": f["pid"], "connections": f["connections"], "messages": f["messages"],
        "errors": errors, "errors_by_kind": f["errors"],
        "connect_errors": f["connect_errors"], "cpu_percent": f["cpu_percent"],
        "late_p50_us": f.get("late_p50_us", 0), "late_p99_us": f.get("late_p99_us", 0),
        "lag_p50_us": f.get("lag_p50_us", 0), "lag_p99_us": f.get("lag_p99_us", 0),
        "histogram_count": histogram.merge([f["corrected"]]).get_total_count(),
    }


def assemble(cfg: dict, ramp: dict, finals: list[dict], buckets: dict[int, list[str]],
             master: dict | None = None, lost: list[dict] = (),
             late: list[dict] = ()) -> dict:
    """Merge the workers' final reports into one result.

    `ramp` holds connected, served, ramp_timed_out and ramp_s; `buckets` maps interval
    index to the encoded histograms received for it from all workers; `master` holds the
    master's ``boot_id`` and the ``start``/``end`` of the measure phase on its clock;
    `lost` and `late` are the crew's records (``loadgen.crew.Crew``).
    """
    finals = sorted(finals, key=lambda f: f["index"])
    measure_s = max((f["measure_s"] for f in finals), default=0.0)
    messages = sum(f["messages"] for f in finals)
    errors = {k: sum(f["errors"][k] for f in finals) for k in ERROR_KINDS}
    connect_errors = {k: sum(f["connect_errors"][k] for f in finals) for k in CONNECT_KINDS}
    corrected = histogram.merge(f["corrected"] for f in finals)
    uncorrected = histogram.merge(f["uncorrected"] for f in finals)
    per_user = [c for f in finals for c in f["per_user"]]
    per_user += [0] * max(0, cfg["connections"] - len(per_user))  # never-spawned users
    achieved = messages / measure_s if measure_s > 0 else 0.0
    target = cfg["rate"] if cfg["mode"] == "open" else None

    intervals = []
    n_int = max(1, int(-(-measure_s // INTERVAL_S)))
    for i in range(n_int):
        h = histogram.merge(buckets.get(i, []))
        length = min(INTERVAL_S, measure_s - i * INTERVAL_S)
        n = h.get_total_count()
        intervals.append({
            "t": round(i * INTERVAL_S, 3),
            "messages": n,
            "rate": round(n / length, 3) if length > 0 else 0.0,
            "p50_us": h.get_value_at_percentile(50.0) if n else 0,
            "p99_us": h.get_value_at_percentile(99.0) if n else 0,
        })

    reasons = []
    for f in finals:
        if (f["cpu_percent"] or 0.0) > CPU_LIMIT:
            reasons.append(f"worker {f['index']} CPU {f['cpu_percent']:.0f}% > {CPU_LIMIT:.0f}%")
        if f.get("late_p50_us", 0) > LATE_LIMIT_US:
            reasons.append(
                f"worker {f['index']} sent late: median {f['late_p50_us'] / 1000:.1f} ms after "
                "the intended time (its CPU is busy or shared)"
            )
        elif f.get("late_p99_us", 0) > LATE_P99_LIMIT_US:
            reasons.append(
                f"worker {f['index']} sent late: p99 {f['late_p99_us'] / 1000:.1f} ms after "
                "the intended time (its CPU is busy or shared)"
            )

    return {
        "config": cfg,
        "connections": {
            "target": cfg["connections"],
            "connected": ramp["connected"],
            "served": ramp["served"],
            "ramp_timed_out": ramp["ramp_timed_out"],
            "ramp_s": round(ramp["ramp_s"], 3),
        },
        "connect_errors": connect_errors,
        "errors": errors,
        "measure_s": round(measure_s, 3),
        "window": _window(finals, master),
        "messages": messages,
        "bytes": sum(f["bytes"] for f in finals),
        "rate": {"target": target, "achieved": round(achieved, 3)},
        "fairness": histogram.fairness(per_user),
        "latency_us": {
            "corrected": histogram.summary(corrected),
            "uncorrected": histogram.summary(uncorrected),
        },
        "histograms": {
            "corrected": histogram.encode(corrected),
            "uncorrected": histogram.encode(uncorrected),
        },
        "intervals": intervals,
        "workers": [_worker(f) for f in finals],
        "limit": {"bound": bool(reasons), "reasons": reasons},
        "lost_workers": list(lost),
        "late_workers": list(late),
    }


def human(r: dict) -> str:
    """A few lines for a person reading the terminal."""
    c, lat = r["connections"], r["latency_us"]
    rate = r["rate"]
    target = f" of {rate['target']:.0f} target" if rate["target"] is not None else ""
    errs = {k: v for k, v in r["errors"].items() if v}
    cerrs = {k: v for k, v in r["connect_errors"].items() if v}
    f = r["fairness"]
    lines = [
        f"connections {c['connected']}/{c['target']} connected, {c['served']} served, "
        f"ramp {c['ramp_s']:.1f}s" + (" (TIMED OUT)" if c["ramp_timed_out"] else ""),
        f"measured {r['measure_s']:.1f}s: {r['messages']} verified echoes, "
        f"{rate['achieved']:.0f} msg/s{target}",
        f"errors {errs or 'none'}; connect errors {cerrs or 'none'}",
        f"fairness min {f['min']} median {f['median']:g} max {f['max']} "
        f"jain {f['jain']:.3f} starved {f['starved']}",
    ]
    for kind in ("corrected", "uncorrected"):
        s = lat[kind]
        lines.append(
            f"latency {kind:11s} µs p50 {s['p50']} p90 {s['p90']} p99 {s['p99']} "
            f"p99.9 {s['p99.9']} max {s['max']} (n={s['count']})"
        )
    for w in r["workers"]:
        cpu = "-" if w["cpu_percent"] is None else f"{w['cpu_percent']:.0f}%"
        lines.append(f"worker {w['index']} {w['host']} {w['address']} pid {w['pid']}: "
                     f"{w['connections']} conns, {w['messages']} msgs, {w['errors']} errors, "
                     f"CPU {cpu}, late p50 {w['late_p50_us']} µs, own lag p99 "
                     f"{w['lag_p99_us']} µs")
    for w in r["lost_workers"]:
        lines.append(f"WORKER LOST: {w['index']} {w['host']} {w['address']} pid {w['pid']} "
                     f"during {w['phase']} ({w['why']}): figures are the survivors'")
    for w in r["late_workers"]:
        lines.append(f"late worker refused: {w['host']} during {w['phase']}")
    if rate["target"] is not None and rate["achieved"] < 0.99 * rate["target"]:
        lines.append(f"RATE NOT HELD: {rate['achieved']:.0f} of {rate['target']:.0f} msg/s")
    if r["limit"]["bound"]:
        lines.append("LOADGEN AT ITS LIMIT (throughput is a lower bound): "
                     + "; ".join(r["limit"]["reasons"]))
    return "\n".join(lines)
