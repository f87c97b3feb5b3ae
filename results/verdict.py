"""Whose limit a case shows: ``held``, ``server-bound``, ``loadgen-bound`` or ``failed``.

* ``failed``: the case did not run to a measurement (server or loadgen exit, abort), or
  fewer than :data:`CONNECTED_FRACTION` of the connections were ever established.
* ``held``: open loop, the target rate achieved (≥ ``slo.held_fraction``), corrected p99
  within ``slo.p99_ms``, no more than ``slo.starved_fraction`` of the connections without
  an echo (where each was due to send :data:`STARVED_MIN_SENDS` or more), and the
  loadgen under its own limit.
* ``loadgen-bound``: not held (or closed loop) while the loadgen was at its limit, and no
  connection starved (a loadgen at its limit sends late, never not at all) — a
  worker's CPU, timed sends leaving late, the loadgen's process tree using
  :data:`LOADGEN_CPU_LIMIT` of the CPUs it may run on, or waiting for a CPU (taken by
  anything else) :data:`LOADGEN_STALL_LIMIT` of the window. Its throughput is a lower
  bound. Also, open loop, a p99 latency over the SLO of which a worker's own lag (how
  long its loop took to serve a ready echo or a due send) is :data:`LOADGEN_LAG_SHARE`
  or more: the server's CPU cannot decide this (a server can miss the SLO at low CPU, as
  the thread server's GIL convoy does), the loadgen's own delay can.
* ``server-bound``: not held (or closed loop) while the loadgen had headroom: the figure
  is the server's.

Pure functions of a case record (``results/SCHEMA.md``); the runner stores the verdict
in the case, readers of version-1 files compute it on load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

VERDICTS = ("held", "server-bound", "loadgen-bound", "failed")
CONNECTED_FRACTION = 0.99
LOADGEN_CPU_LIMIT = 0.90
# The share of the measure window during which some loadgen process was runnable but
# waited for a CPU (cgroup pressure stall information): past it, the loadgen's timing, and
# so the latency it measures, is partly its own scheduling.
LOADGEN_STALL_LIMIT = 0.25
# A connection counts as starved (no echo in the window) only where it was due to send
# at least this many messages: at 0.5 msg/s per connection a 2 s window leaves some
# connections with nothing to send, which says nothing about the server.
STARVED_MIN_SENDS = 3.0
# The share of a missed p99 that, when it is the loadgen's own lag, makes the miss the
# loadgen's: with a quarter of the tail its own, the server's part may be within the SLO.
LOADGEN_LAG_SHARE = 0.25


@dataclass(frozen=True)
class SLO:
    """What "the server held the load" means."""

    held_fraction: float = 0.99  # of the target rate achieved
    p99_ms: float = 10.0  # corrected p99 latency
    starved_fraction: float = 0.01  # of the connections with no echo in the window

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, cfg: dict) -> SLO:
        return cls(held_fraction=cfg.get("slo_held", cls.held_fraction),
                   p99_ms=cfg.get("slo_p99_ms", cls.p99_ms))


def loadgen_limits(case: dict) -> list[str]:
    """Why the loadgen was at its limit in this case (empty: it had headroom)."""
    lg = case.get("loadgen") or {}
    reasons = list((lg.get("limit") or {}).get("reasons") or [])
    cpu = (case.get("cpu") or {}).get("loadgen") or {}
    cores, limit = cpu.get("cores"), cpu.get("limit_cores")
    if cores is not None and limit and cores >= LOADGEN_CPU_LIMIT * limit:
        reasons.append(f"loadgen CPU {cores:.2f} of its {limit:g} core(s)")
    stall = cpu.get("stall")
    if stall is not None and stall >= LOADGEN_STALL_LIMIT:
        reasons.append(f"loadgen waited for a CPU {stall:.0%} of the window")
    return reasons


def lag_limit(case: dict, slo: SLO) -> str | None:
    """Why a p99 over the SLO is the loadgen's own lag (``None``: it is not)."""
    lg = case["loadgen"]
    p99 = lg["latency_us"]["corrected"]["p99"]
    if p99 <= slo.p99_ms * 1000:
        return None
    lag = max((w.get("lag_p99_us", 0) for w in lg.get("workers") or []), default=0)
    if lag < LOADGEN_LAG_SHARE * p99:
        return None
    return (f"loadgen's own lag p99 {lag / 1000:,.1f} ms is {lag / p99:.0%} of the p99 "
            f"latency {p99 / 1000:,.1f} ms")


def shortfalls(case: dict, slo: SLO) -> list[str]:
    """How an open-loop case missed the SLO (empty: it held the load)."""
    lg = case["loadgen"]
    out = []
    target, achieved = lg["rate"]["target"], lg["rate"]["achieved"]
    if target is not None and achieved < slo.held_fraction * target:
        out.append(f"{achieved:,.0f} of {target:,.0f} msg/s")
    p99 = lg["latency_us"]["corrected"]["p99"] / 1000
    if p99 > slo.p99_ms:
        out.append(f"p99 {p99:,.1f} ms > {slo.p99_ms:g} ms")
    n, starved = lg["connections"]["target"], lg["fairness"]["starved"]
    if starved > slo.starved_fraction * n and _expected_per_connection(lg) >= STARVED_MIN_SENDS:
        out.append(f"{starved:,} of {n:,} connections starved")
    return out


def _expected_per_connection(lg: dict) -> float:
    """Messages each connection was due to send in the window (closed loop: unbounded)."""
    target = lg["rate"]["target"]
    if target is None:
        return float("inf")
    return target / max(1, lg["connections"]["target"]) * lg["measure_s"]


def judge(case: dict, slo: SLO) -> dict:
    """``{"kind": one of VERDICTS, "reason": one line}`` for a finished case record."""
    if case["status"] != "ok" or case.get("loadgen") is None:
        reason = case["status"].split(": ", 1)[-1] if case["status"] != "ok" else "no result"
        return {"kind": "failed", "reason": reason}
    lg = case["loadgen"]
    c = lg["connections"]
    if c["connected"] < CONNECTED_FRACTION * c["target"]:
        return {"kind": "failed", "reason": f"connections: {c['connected']:,} of "
                f"{c['target']:,} established"}
    limits = loadgen_limits(case)
    if lg["rate"]["target"] is None:  # closed loop: whoever is at its limit sets the figure
        if limits:
            return {"kind": "loadgen-bound", "reason": "; ".join(limits)}
        return {"kind": "server-bound", "reason": "closed loop, loadgen had headroom"}
    missed = shortfalls(case, slo)
    lagged = lag_limit(case, slo)
    if lagged:
        limits.append(lagged)
    if not missed and not limits:
        return {"kind": "held", "reason": f"{lg['rate']['achieved']:,.0f} msg/s, p99 "
                f"{lg['latency_us']['corrected']['p99'] / 1000:,.2f} ms"}
    if limits and not any(m.endswith("connections starved") for m in missed):
        return {"kind": "loadgen-bound", "reason": "; ".join(limits + missed)}
    # A busy loadgen sends late, never not at all: connections without an echo through the
    # whole window are the server's doing, whatever the loadgen's state.
    also = f" (loadgen also at its limit: {'; '.join(limits)})" if limits else ""
    return {"kind": "server-bound", "reason": "; ".join(missed) + also}


def throughput(case: dict) -> str:
    """The achieved rate as a reader should take it: ``≥ 34,716`` when the loadgen was the
    bound (the server may do more), ``-`` without a measurement."""
    lg = case.get("loadgen")
    if lg is None or case["verdict"]["kind"] == "failed":
        return "-"
    rate = f"{lg['rate']['achieved']:,.0f}"
    return f"≥ {rate}" if case["verdict"]["kind"] == "loadgen-bound" else rate
