"""Synthetic micro and bench runs for the compare/history/baseline tests.

They are built on ``store.new_run`` (real machine and git blocks) and saved through
``store.save_run``, so every file a test uses passes the schema validator.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import runner
from results import store

OUR_COMMANDS = ("micro", "compare", "history", "baseline")


@pytest.fixture
def store_dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Point the store at empty tmp runs/ and baselines/ directories."""
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    runs.mkdir()
    baselines.mkdir()
    monkeypatch.setattr(store, "RUNS_DIR", runs)
    monkeypatch.setattr(store, "BASELINES_DIR", baselines)
    return runs, baselines


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``runner.py ARGV`` in-process through runner.main: (exit status, stdout, stderr).

    Only the regression commands (micro, compare, history, baseline) are registered, so
    the tests do not depend on the bench/report modules; dispatch and error handling are
    runner.py's own.
    """
    saved = runner.COMMANDS
    runner.COMMANDS = OUR_COMMANDS
    try:
        code = runner.main(list(argv))
    finally:
        runner.COMMANDS = saved
    out, err = capsys.readouterr()
    return code, out, err


def noisy(center: float, n: int, rel: float, rng: random.Random) -> list[float]:
    return [center * (1 + rng.gauss(0, rel)) for _ in range(n)]


def micro_run(
    run_id: str,
    centers: dict[str, float],
    n: int = 9,
    rel_noise: float = 0.01,
    seed: int = 0,
    procs: int = 1,
    commit_time: str | None = None,
    sha: str | None = None,
) -> dict:
    """A micro run with one case per name, ``n`` values around its center (µs/op)."""
    rng = random.Random(seed)
    run = store.new_run("micro", {"procs": [procs], "processes": 3, "values": n // 3})
    run["id"] = run_id
    if commit_time:
        run["git"]["commit_time"] = commit_time
    if sha:
        run["git"]["sha"] = sha
        run["git"]["dirty"] = False
    for name, center in centers.items():
        values = noisy(center, n, rel_noise, rng)
        aio = noisy(center / 2, n, rel_noise, rng)
        run["cases"].append({
            "name": name, "procs": procs, "unit": "us/op", "loops": 1000,
            "values": values, "asyncio_values": aio,
            "ratio_median": sorted(v / a for v, a in zip(values, aio, strict=True))[n // 2],
        })
    return run


def _pct(p50: float, p99: float) -> dict:
    return {"p50": p50, "p90": (p50 + p99) / 2, "p99": p99, "p99.9": p99 * 1.5,
            "p99.99": p99 * 2, "max": p99 * 3, "mean": p50 * 1.1, "count": 10000}


def _footprint(rss: int) -> dict:
    return {"rss": rss, "pss": rss, "uss": rss, "threads": 2, "procs": 1, "fds": 110}


def bench_case(
    strategy: str,
    connections: int,
    repeat: int,
    rng: random.Random,
    p99: float = 2000.0,
    rate: float = 10000.0,
    intervals: int = 10,
    status: str = "ok",
) -> dict:
    """One ok bench case in the runner's format, with per-second intervals around p99/rate."""
    ivs = [{"t": float(i + 1), "messages": int(rate), "rate": rate * (1 + rng.gauss(0, 0.01)),
            "p50_us": 500 * (1 + rng.gauss(0, 0.01)), "p99_us": p99 * (1 + rng.gauss(0, 0.01))}
           for i in range(intervals)]
    key = {"strategy": strategy, "connections": connections, "rate": None, "size": 64,
           "mode": "closed", "conn_mode": "persistent", "repeat": repeat}
    if status != "ok":
        return {"key": key, "status": status, "started": "2026-01-01T00:00:00+00:00",
                "duration_s": 1.0, "server_cmd": ["python", "-m", "servers", strategy],
                "pin": None, "loadgen": None, "loadgen_proc": None, "server": None,
                "cpu_s_per_1k_msgs": None, "mem_per_conn": {"metric": "rss", "bytes": None},
                "machine_mem": {"available_before": 1, "available_min": 1, "drop": 0},
                "netstat": {"ListenOverflows": 0, "ListenDrops": 0},
                "defects": [], "measurement_defects": [], "notes": [],
                "verdict": {"kind": "failed", "reason": status.split(": ", 1)[-1]},
                "window": None,
                "cpu": {"server": None, "loadgen": None, "series": {"server": [], "loadgen": []}}}
    msgs = int(rate * intervals)
    loadgen = {
        "config": {"connections": connections},
        "connections": {"target": connections, "connected": connections, "served": connections,
                        "ramp_timed_out": False, "ramp_s": 0.5},
        "connect_errors": {k: 0 for k in ("refused", "reset", "timeout", "other")},
        "errors": {k: 0 for k in ("refused", "reset", "timeout", "corrupt", "closed", "other")},
        "measure_s": float(intervals), "messages": msgs, "bytes": msgs * 64,
        "rate": {"target": None, "achieved": rate * (1 + rng.gauss(0, 0.01))},
        "fairness": {"min": 1, "median": 10.0, "max": 20, "jain": 0.99, "starved": 0},
        "latency_us": {"corrected": _pct(500 * (1 + rng.gauss(0, 0.01)),
                                         p99 * (1 + rng.gauss(0, 0.01))),
                       "uncorrected": _pct(500.0, p99)},
        "histograms": {"corrected": "", "uncorrected": ""},
        "intervals": ivs, "workers": [], "window": None,
        "limit": {"bound": False, "reasons": []},
    }
    server = {
        "pid": 4242, "idle": _footprint(20_000_000), "load": _footprint(40_000_000),
        "peak": {"rss": 41_000_000, "pss": 41_000_000, "threads": 2, "procs": 1, "fds": 110},
        "ctx_switches": {"voluntary": 10, "involuntary": 1},
        "smaps_interval_s": None, "samples": 40, "series": [],
        "exit": {"code": 0, "signal": None},
    }
    return {
        "key": key, "status": "ok", "started": "2026-01-01T00:00:00+00:00",
        "duration_s": intervals + 2.0, "server_cmd": ["python", "-m", "servers", strategy],
        "pin": None, "loadgen": loadgen, "loadgen_proc": {"peak_rss": 1},
        "server": server, "cpu_s_per_1k_msgs": 0.03 * (1 + rng.gauss(0, 0.01)),
        "mem_per_conn": {"metric": "rss", "bytes": 20_000.0 * (1 + rng.gauss(0, 0.01))},
        "machine_mem": {"available_before": 10**10, "available_min": 9 * 10**9, "drop": 10**9},
        "netstat": {"ListenOverflows": 0, "ListenDrops": 0},
        "defects": [], "measurement_defects": [], "notes": [],
        "verdict": {"kind": "server-bound", "reason": "closed loop, loadgen had headroom"},
        "window": {"start": 1.0, "end": 1.0 + intervals},
        "cpu": {"server": {"cores": 0.3, "percent": 30.0, "cpu_s": 3.0, "limit_cores": 1.0,
                           "quota": None, "source": "cgroup", "gap_s": 0.05},
                "loadgen": None, "series": {"server": [], "loadgen": []}},
    }


def bench_run(
    run_id: str,
    repeats: int = 1,
    p99: float = 2000.0,
    seed: int = 0,
    strategies: tuple[str, ...] = ("thread", "goroutine"),
    failed: tuple[str, ...] = (),
    commit_time: str | None = None,
    sha: str | None = None,
) -> dict:
    """A bench run: each strategy × 100 connections × ``repeats``; ``failed`` strategies fail."""
    rng = random.Random(seed)
    run = store.new_run("bench", {"connections": [100], "repeats": repeats})
    run["id"] = run_id
    if commit_time:
        run["git"]["commit_time"] = commit_time
    if sha:
        run["git"]["sha"] = sha
        run["git"]["dirty"] = False
    for s in strategies:
        for r in range(repeats):
            status = "failed: server exited with code 1" if s in failed else "ok"
            run["cases"].append(bench_case(s, 100, r, rng, p99=p99, status=status))
    return run


def save(run: dict, where: Path | None = None) -> Path:
    return store.save_run(run, where)
