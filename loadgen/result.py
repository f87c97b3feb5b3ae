"""The result dict of a run, built from the workers' final reports (pure, no gevent).

Keys are exactly those of HARNESS_INTERFACES.md.  `bytes` counts the payload bytes of
verified echoes one way (message size × messages).
"""

from __future__ import annotations

from loadgen import histogram
from loadgen.recorder import CONNECT_KINDS, ERROR_KINDS, INTERVAL_S

CPU_SATURATED = 90.0
RATE_SATURATED = 0.95
# Open loop: a worker that, woken by its timer, sends more than this late at the median
# is not keeping its schedule (its own CPU is the bottleneck, or is taken by others), so
# the latency it measures is partly its own.
LATE_SATURATED_US = 2000


def assemble(cfg: dict, ramp: dict, finals: list[dict], buckets: dict[int, list[str]]) -> dict:
    """Merge the workers' final reports into one result.

    `ramp` holds connected, served, ramp_timed_out and ramp_s; `buckets` maps interval
    index to the encoded histograms received for it from all workers.
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
    n_int = max(1, int(-(-cfg["duration"] // INTERVAL_S)))
    for i in range(n_int):
        h = histogram.merge(buckets.get(i, []))
        length = min(INTERVAL_S, cfg["duration"] - i * INTERVAL_S)
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
        if f["cpu_percent"] > CPU_SATURATED:
            reasons.append(
                f"worker {f['index']} CPU {f['cpu_percent']:.0f}% > {CPU_SATURATED:.0f}%"
            )
        if f.get("late_p50_us", 0) > LATE_SATURATED_US:
            reasons.append(
                f"worker {f['index']} sent late: median {f['late_p50_us'] / 1000:.1f} ms after "
                "the intended time (its CPU is busy or shared)"
            )
    if target is not None and achieved < RATE_SATURATED * target:
        reasons.append(f"achieved {achieved:.0f} msg/s < 95% of target {target:.0f} msg/s")

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
        "workers": [
            {"index": f["index"], "connections": f["connections"],
             "cpu_percent": f["cpu_percent"], "pid": f["pid"]}
            for f in finals
        ],
        "saturated": bool(reasons),
        "saturation_reason": "; ".join(reasons) or None,
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
    cpu = ", ".join(f"w{w['index']} {w['cpu_percent']:.0f}%" for w in r["workers"])
    lines.append(f"worker CPU {cpu}")
    if r["saturated"]:
        lines.append(f"SATURATED: {r['saturation_reason']}")
    return "\n".join(lines)
