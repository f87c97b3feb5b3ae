"""Closed and open loop against the asyncio echo server: counts, zero errors, rate."""

from __future__ import annotations

import json
import signal

import pytest
from hdrh.histogram import HdrHistogram

from tests.loadgen.conftest import run_loadgen

NO_ERRORS = {"refused": 0, "reset": 0, "timeout": 0, "corrupt": 0, "closed": 0, "other": 0}


LATENCY_KEYS = {"p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "count"}


def _has_the_agreed_keys(r: dict) -> None:
    """Exactly the keys results/SCHEMA.md gives the loadgen result (the runner codes
    against them)."""
    assert set(r) == {"config", "connections", "connect_errors", "errors", "measure_s",
                      "window", "messages", "bytes", "rate", "fairness", "latency_us",
                      "histograms", "intervals", "workers", "limit", "lost_workers",
                      "late_workers"}
    assert set(r["connections"]) == {"target", "connected", "served", "ramp_timed_out",
                                     "ramp_s"}
    assert set(r["connect_errors"]) == {"refused", "reset", "timeout", "other"}
    assert set(r["errors"]) == set(NO_ERRORS)
    assert set(r["rate"]) == {"target", "achieved"}
    assert set(r["fairness"]) == {"min", "median", "max", "jain", "starved"}
    assert set(r["latency_us"]) == set(r["histograms"]) == {"corrected", "uncorrected"}
    assert set(r["latency_us"]["corrected"]) == set(r["latency_us"]["uncorrected"]) \
        == LATENCY_KEYS
    for i in r["intervals"]:
        assert set(i) == {"t", "messages", "rate", "p50_us", "p99_us"}
    for w in r["workers"]:
        assert set(w) == {"index", "host", "address", "pid", "connections", "messages",
                          "errors", "errors_by_kind", "connect_errors", "cpu_percent",
                          "late_p50_us", "late_p99_us", "lag_p50_us", "lag_p99_us",
                          "histogram_count"}
        assert w["address"] == "127.0.0.1"
        assert w["histogram_count"] == w["messages"]
    assert r["lost_workers"] == r["late_workers"] == []
    assert isinstance(r["limit"]["bound"], bool)
    w = r["window"]
    assert w["source"] == "workers"  # workers open their windows within ms of each other
    assert r["config"]["duration"] - 1e-6 <= w["end"] - w["start"] < r["config"]["duration"] + 0.5


def _consistent(r: dict, size: int) -> None:
    _has_the_agreed_keys(r)
    assert r["errors"] == NO_ERRORS
    assert sum(r["connect_errors"].values()) == 0
    assert r["connections"]["connected"] == r["connections"]["target"]
    assert r["connections"]["served"] == r["connections"]["target"]
    assert not r["connections"]["ramp_timed_out"]
    assert r["bytes"] == r["messages"] * size
    for kind in ("corrected", "uncorrected"):
        assert r["latency_us"][kind]["count"] == r["messages"]
        h = HdrHistogram.decode(r["histograms"][kind].encode())
        assert h.get_total_count() == r["messages"]
    assert sum(i["messages"] for i in r["intervals"]) == r["messages"]
    assert sum(w["connections"] for w in r["workers"]) == r["connections"]["target"]


def test_closed_loop_persistent(asyncio_server):
    r = run_loadgen(asyncio_server.port, "--connections", "10", "--duration", "2",
                    "--warmup", "0.5", "--workers", "2", "--size", "100")
    _consistent(r, 100)
    assert r["messages"] > 500
    assert r["rate"]["target"] is None
    assert r["rate"]["achieved"] == pytest.approx(r["messages"] / r["measure_s"], rel=1e-3)
    assert r["fairness"]["starved"] == 0
    # closed loop: intended time is the actual send time
    assert r["latency_us"]["corrected"] == r["latency_us"]["uncorrected"]
    assert len(r["intervals"]) == 2
    assert [w["index"] for w in r["workers"]] == [0, 1]


def test_open_loop_holds_the_target_rate(asyncio_server):
    # --timeout 1: intervals older than 2.5 s reach the master in the periodic reports,
    # the rest in the final one; _consistent checks none is lost or counted twice.
    r = run_loadgen(asyncio_server.port, "--connections", "40", "--mode", "open",
                    "--rate", "400", "--duration", "4", "--warmup", "0.5", "--workers", "2",
                    "--timeout", "1")
    _consistent(r, 64)
    assert r["rate"]["target"] == 400
    assert r["messages"] == pytest.approx(1600, rel=0.05)
    assert r["rate"]["achieved"] == pytest.approx(400, rel=0.05)
    # every connection sends 10 msg/s: 40 each over 4 s, give or take the phase
    assert r["fairness"]["min"] >= 38 and r["fairness"]["max"] <= 42
    for i in r["intervals"]:
        assert i["rate"] == pytest.approx(400, rel=0.1)
    lat = r["latency_us"]
    assert lat["corrected"]["p50"] >= lat["uncorrected"]["p50"]


def test_open_loop_per_message_connections(fault_server):
    """Every message is a connection of its own: the server accepts one per message, plus
    the one each user makes for its ramp echo."""
    s = fault_server("echo")
    r = run_loadgen(s.port, "--connections", "10", "--mode", "open",
                    "--rate", "200", "--duration", "2", "--warmup", "0",
                    "--conn-mode", "per-message", "--workers", "1")
    _consistent(r, 64)
    assert r["config"]["conn_mode"] == "per-message" and r["config"]["workers"] == 1
    assert r["messages"] == pytest.approx(400, rel=0.05)
    s.signal(signal.SIGTERM)
    stopped = json.loads(s.proc.stdout.readline())
    # Never below one per message; above only by the messages sent between the end of the
    # measured window and the users' stop, far fewer than the window's own.
    assert r["messages"] + 10 <= stopped["accepted"] < 2 * r["messages"]


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_sizes_from_one_byte_to_one_mebibyte(asyncio_server, size):
    r = run_loadgen(asyncio_server.port, "--connections", "2", "--duration", "1",
                    "--warmup", "0", "--workers", "3", "--size", str(size))
    _consistent(r, size)
    assert r["config"]["workers"] == 2  # clamped: a worker needs a connection
    assert r["messages"] >= 5
