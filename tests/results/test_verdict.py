"""results.verdict: whose limit each case shows, on cases of known figures."""

from __future__ import annotations

import pytest

from results.verdict import SLO, judge, throughput
from tests.results.bench_cases import case, cpu


def _with(c: dict, **changes) -> dict:
    lg = c["loadgen"]
    for k, v in changes.items():
        if k == "connected":
            lg["connections"]["connected"] = v
        elif k == "limit":
            lg["limit"] = {"bound": bool(v), "reasons": v}
        elif k == "loadgen_cpu":
            c["cpu"]["loadgen"] = v
        else:
            raise KeyError(k)
    c["verdict"] = judge(c, SLO())
    return c


def test_target_achieved_in_the_slo_with_loadgen_headroom_is_held():
    c = case("thread", 100, achieved=100.0, p50_us=1000)  # p99 = 4 ms
    assert c["verdict"] == {"kind": "held", "reason": "100 msg/s, p99 4.00 ms"}
    assert throughput(c) == "100"


@pytest.mark.parametrize("figures,reason", [
    ({"achieved": 98.0}, "98 of 100 msg/s"),
    ({"p50_us": 3000}, "p99 12.0 ms > 10 ms"),
    ({"starved": 2}, "2 of 100 connections starved"),
])
def test_missing_the_slo_with_loadgen_headroom_is_server_bound(figures, reason):
    c = case("iterative", 100, **figures)
    assert c["verdict"] == {"kind": "server-bound", "reason": reason}


@pytest.mark.parametrize("limit,reason", [
    ({"limit": ["worker 0 CPU 95% > 90%"]}, "worker 0 CPU 95% > 90%"),
    ({"loadgen_cpu": cpu(0.95)}, "loadgen CPU 0.95 of its 1 core(s)"),
    ({"loadgen_cpu": {**cpu(0.3), "stall": 0.4}}, "loadgen waited for a CPU 40% of the window"),
])
def test_the_loadgen_at_its_limit_makes_the_figure_a_lower_bound(limit, reason):
    c = _with(case("goroutine", 100, achieved=90.0), **limit)
    assert c["verdict"]["kind"] == "loadgen-bound"
    assert c["verdict"]["reason"] == f"{reason}; 90 of 100 msg/s"
    assert throughput(c) == "≥ 90"


def test_held_needs_the_loadgen_under_its_limit_too():
    c = _with(case("asyncio", 100), loadgen_cpu=cpu(0.99))
    assert c["verdict"]["kind"] == "loadgen-bound"


def test_fewer_than_99_percent_connected_fails_never_ok():
    c = _with(case("fork", 1000, achieved=1000.0), connected=989)
    assert c["verdict"] == {"kind": "failed", "reason": "connections: 989 of 1,000 established"}
    assert throughput(c) == "-"
    assert _with(case("fork", 1000, achieved=1000.0), connected=990)["verdict"]["kind"] == "held"


def test_a_case_that_did_not_run_to_a_measurement_fails_with_its_status():
    c = case("thread", 100, status="aborted: time limit (1 s)")
    assert c["verdict"] == {"kind": "failed", "reason": "time limit (1 s)"}


def test_closed_loop_is_the_server_s_figure_unless_the_loadgen_was_full():
    c = case("goroutine", 100, mode="closed", achieved=30000.0)
    assert c["verdict"] == {"kind": "server-bound",
                            "reason": "closed loop, loadgen had headroom"}
    full = _with(case("goroutine", 100, mode="closed", achieved=30000.0),
                 loadgen_cpu=cpu(0.97))
    assert full["verdict"]["kind"] == "loadgen-bound" and throughput(full) == "≥ 30,000"


def test_the_slo_is_settable():
    c = case("thread", 100, p50_us=3000)  # p99 12 ms
    assert judge(c, SLO(p99_ms=20.0))["kind"] == "held"
    assert judge(c, SLO.from_config({"slo_p99_ms": 20.0, "slo_held": 0.99}))["kind"] == "held"


def test_a_connection_with_too_few_sends_due_is_not_counted_as_starved():
    c = case("thread", 100, starved=50)  # 1 msg/s per connection over a 10 s window
    assert c["verdict"]["kind"] == "server-bound"
    c["loadgen"]["measure_s"] = 2.0  # 2 sends due per connection: zero echoes is no sign
    assert judge(c, SLO())["kind"] == "held"


def test_starved_connections_are_the_servers_doing_even_with_the_loadgen_at_its_limit():
    c = _with(case("iterative", 100, achieved=1.0, starved=99),
              limit=["worker 0 sent late: p99 7.7 ms after the intended time"])
    assert c["verdict"] == {"kind": "server-bound", "reason":
                            "1 of 100 msg/s; 99 of 100 connections starved (loadgen also at "
                            "its limit: worker 0 sent late: p99 7.7 ms after the intended time)"}


def _lagged(c: dict, lag_p99_us: int) -> dict:
    c["loadgen"]["workers"] = [{"index": 0, "lag_p99_us": lag_p99_us},
                               {"index": 1, "lag_p99_us": lag_p99_us // 10}]
    c["verdict"] = judge(c, SLO())
    return c


def test_a_missed_p99_that_is_largely_the_loadgens_own_lag_is_loadgen_bound():
    # p99 12 ms with the worker's loop 6 ms late at p99: at low worker CPU, half the tail
    # is the loadgen's, so the server is not to blame.
    c = _lagged(case("goroutine", 100, p50_us=3000), 6000)
    assert c["verdict"]["kind"] == "loadgen-bound"
    assert c["verdict"]["reason"] == ("loadgen's own lag p99 6.0 ms is 50% of the p99 latency "
                                      "12.0 ms; p99 12.0 ms > 10 ms")


def test_a_missed_p99_with_little_loadgen_lag_stays_server_bound_at_any_server_cpu():
    # The thread server's GIL convoy misses the SLO at low CPU: the lag decides, not CPU.
    c = _lagged(case("thread", 100, p50_us=3000), 2999)
    assert c["verdict"] == {"kind": "server-bound", "reason": "p99 12.0 ms > 10 ms"}


def test_lag_within_the_slo_does_not_make_a_held_case_loadgen_bound():
    c = _lagged(case("thread", 100, p50_us=1000), 3000)  # p99 4 ms, lag 75% of it
    assert c["verdict"]["kind"] == "held"
