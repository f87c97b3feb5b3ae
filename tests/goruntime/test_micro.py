"""goruntime.micro: the registry runner.py micro uses, and the table CLI (smoke, not timing)."""

from __future__ import annotations

import pytest

from goruntime import micro

pytestmark = pytest.mark.timeout(120)

NAMES = [
    "CreateGoroutines", "ChanSync", "ChanProdCons0", "ChanProdCons10", "ChanProdCons100",
    "SelectUncontended", "SelectSyncContended", "PingPongHog", "MutexContended", "Gosched",
    "NetpollRoundTrip",
]


def test_registry_has_go_s_benchmarks():
    assert list(micro.BENCHMARKS) == NAMES
    for name, b in micro.BENCHMARKS.items():
        assert b.name == name and b.unit == "us/op" and b.doc


@pytest.mark.parametrize("name", NAMES)
def test_each_benchmark_runs_tiny_loops_and_reports_a_positive_time(name, procs):
    """Uneven counts split among workers must still be exact: a body that did more or fewer
    ops than asked fails its postcondition (AssertionError) instead of returning a time."""
    b = micro.BENCHMARKS[name]
    for loops in (1, 7):
        dt = b.run(loops, procs)
        assert isinstance(dt, float) and dt > 0
    a = b.run_asyncio(7)
    assert a is None or (isinstance(a, float) and a > 0)


def test_cli_prints_a_table(capsys):
    assert micro.main(["--procs", "1,2", "--filter", "^ChanSync$|Netpoll", "--scale", "0.01"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(("ChanSync", "NetpollRoundTrip"))]
    assert len(lines) == 4  # two benchmarks x two procs values
    assert "speedup vs asyncio" in out


@pytest.mark.parametrize("argv", [["--procs", "0"], ["--procs", "x"], ["--filter", "("]])
def test_cli_bad_input_exits_2_with_one_line(argv, capsys):
    assert micro.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
