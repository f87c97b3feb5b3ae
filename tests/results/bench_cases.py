"""Bench cases with known figures, for the report tests (tables, medians, slopes, plots).

Every case passes the schema (the report reads them back through ``store.load_run``); the
latency histograms are real HdrHistograms holding the stated values.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from results import store
from results.verdict import SLO, judge


def _hist(values_us: list[int]) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values_us:
        h.record_value(v)
    return h.encode().decode()


def _pct(p50_us: float) -> dict:
    return {"p50": p50_us, "p90": 2 * p50_us, "p99": 4 * p50_us, "p99.9": 8 * p50_us,
            "p99.99": 9 * p50_us, "max": 10 * p50_us, "mean": 1.5 * p50_us, "count": 100}


def _fp(rss: int, threads: int, procs: int) -> dict:
    return {"rss": rss, "pss": rss // 2, "uss": rss // 3, "threads": threads, "procs": procs,
            "fds": 10}


def case(strategy: str, n: int, *, repeat: int = 0, status: str = "ok", achieved: float = 100.0,
         p50_us: float = 1000.0, rss_load: int = 50 << 20, rss_idle: int = 10 << 20,
         starved: int = 0, errors: int = 0, mode: str = "open") -> dict:
    ok = status == "ok"
    threads = n + 1 if strategy == "thread" else 1
    procs = n + 1 if strategy == "fork" else 1
    metric = "pss" if strategy == "fork" else "rss"
    idle, load = _fp(rss_idle, 1, 1), _fp(rss_load, threads, procs)
    lg = {
        "config": {}, "connections": {"target": n, "connected": n, "served": n - starved,
                                      "ramp_timed_out": False, "ramp_s": 0.5},
        "connect_errors": {"refused": 0, "reset": 0, "timeout": 0, "other": 0},
        "errors": {"refused": 0, "reset": errors, "timeout": 0, "corrupt": 0, "closed": 0,
                   "other": 0},
        "measure_s": 10.0, "messages": int(achieved * 10), "bytes": int(achieved * 640),
        "rate": {"target": float(n) if mode == "open" else None, "achieved": achieved},
        "fairness": {"min": 0, "median": 10.0, "max": 20, "jain": 0.9, "starved": starved},
        "latency_us": {"corrected": _pct(p50_us), "uncorrected": _pct(p50_us / 2)},
        "histograms": {"corrected": _hist([int(p50_us)] * 50 + [int(4 * p50_us)] * 50),
                       "uncorrected": _hist([int(p50_us / 2)] * 100)},
        "intervals": [{"t": 0.0, "messages": 100, "rate": achieved}],
        "workers": [], "window": None, "limit": {"bound": False, "reasons": []},
    }
    c = {
        "key": {"strategy": strategy, "connections": n, "rate": float(n) if mode == "open"
                else None, "size": 64, "mode": mode, "conn_mode": "persistent",
                "repeat": repeat},
        "status": status, "started": "2026-01-01T00:00:00+00:00", "duration_s": 12.0,
        "server_cmd": ["python", "-m", "servers", strategy], "pin": None,
        "loadgen": lg if ok else None,
        "loadgen_proc": {"peak_rss": 1 << 27} if ok else None,
        "server": {
            "pid": 1, "idle": idle, "load": load,
            "peak": {"rss": rss_load, "pss": rss_load // 2, "threads": threads, "procs": procs,
                     "fds": n + 5},
            "ctx_switches": {"voluntary": 1, "involuntary": 1},
            "smaps_interval_s": 0.25, "samples": 1,
            "series": [{"t": 0.0, "rss": rss_load, "pss": None, "uss": None, "threads": threads,
                        "procs": procs, "fds": 5, "mem_available": 1 << 33}],
            "exit": {"code": 0, "signal": None},
        } if ok else None,
        "cpu_s_per_1k_msgs": 0.1 if ok else None,
        "mem_per_conn": {"metric": metric,
                         "bytes": (load[metric] - idle[metric]) / n if ok else None},
        "machine_mem": {"available_before": 1 << 34, "available_min": 1 << 33, "drop": 1 << 33},
        "netstat": {"ListenOverflows": 0, "ListenDrops": 0},
        "defects": [], "measurement_defects": [], "notes": [],
        "window": {"start": 1.0, "end": 11.0} if ok else None,
        "cpu": {"server": cpu(0.1) if ok else None, "loadgen": cpu(0.2) if ok else None,
                "series": {"server": [], "loadgen": []}},
    }
    c["verdict"] = judge(c, SLO())
    return c


def cpu(cores: float, limit: float = 1.0) -> dict:
    """A case's CPU block: ``cores`` used of ``limit``."""
    return {"cores": cores, "percent": 100 * cores, "cpu_s": 10 * cores, "limit_cores": limit,
            "quota": None, "source": "cgroup", "gap_s": 0.05}


def bench_run(cases: list[dict], strategies: list[str] | None = None) -> dict:
    run = store.new_run("bench", {"strategies": strategies or ["thread", "asyncio"]})
    run["cases"] = cases
    return run
